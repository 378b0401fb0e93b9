/// Salesforce's length limits on the text Switchboard writes, and cuts that respect them.
///
/// A cut never splits a character (a grapheme cluster, so never a UTF-8 or UTF-16 sequence either) and ends with
/// ``marker``, which counts inside the limit: the result always fits.
public enum TextLimits {
    /// Appended to every shortened text so a reader knows the rest was left out.
    public static let marker = "… [truncated by Switchboard]"
    /// `CaseComment.CommentBody` holds at most 4,000 **bytes** (UTF-8), not characters.
    public static let caseCommentBodyBytes = 4_000
    /// `FeedItem.Body` holds at most 10,000 characters unless the org's describe says otherwise.
    public static let feedItemBodyCharacters = 10_000

    /// `text` cut to at most `maxBytes` UTF-8 bytes.
    public static func cut(_ text: String, maxUTF8Bytes maxBytes: Int, marker: String = TextLimits.marker) -> String {
        cut(text, limit: maxBytes, marker: marker) { $0.utf8.count }
    }

    /// `text` cut to at most `maxCharacters` characters as Salesforce counts them.
    ///
    /// Salesforce measures text lengths in UTF-16 code units (an emoji outside the Basic Multilingual Plane counts
    /// two), so that is what is counted here: a count in graphemes could let an emoji-heavy text overflow.
    public static func cut(_ text: String, maxCharacters: Int, marker: String = TextLimits.marker) -> String {
        cut(text, limit: maxCharacters, marker: marker) { $0.utf16.count }
    }

    /// A Case comment body that fits `CommentBody`.
    public static func caseCommentBody(_ text: String) -> String {
        cut(text, maxUTF8Bytes: caseCommentBodyBytes)
    }

    /// A feed post body that fits `FeedItem.Body`; `describedLength` is the field's length from describe, when known.
    public static func feedItemBody(_ text: String, describedLength: Int? = nil) -> String {
        let limit = describedLength.flatMap { $0 > 0 ? $0 : nil } ?? feedItemBodyCharacters
        return cut(text, maxCharacters: limit)
    }

    private static func cut(_ text: String, limit: Int, marker: String, measure: (Substring) -> Int) -> String {
        guard limit > 0 else { return "" }
        if measure(Substring(text)) <= limit { return text }
        let markerSize = measure(Substring(marker))
        // A limit smaller than the marker: the text alone, cut, is more useful than a partial marker.
        let room = markerSize < limit ? limit - markerSize : limit
        var used = 0
        var end = text.startIndex
        for character in text {
            let size = measure(Substring(String(character)))
            if used + size > room { break }
            used += size
            end = text.index(after: end)
        }
        let kept = text[text.startIndex..<end]
        return markerSize < limit ? String(kept) + marker : String(kept)
    }
}
