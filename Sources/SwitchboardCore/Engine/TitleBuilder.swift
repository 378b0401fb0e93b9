/// Renders `{{Field}}` templates.
public enum TemplateRenderer {
    /// Replaces each placeholder with the text `value` gives for the field (empty when blank).
    public static func render(_ template: Template, value: (String) -> String) -> String {
        var out = ""
        for part in template.parts {
            switch part {
            case .literal(let s): out += s
            case .field(let name): out += value(name)
            }
        }
        return out
    }
}

/// Builds incident titles: prefix plus up to three field values, or a template; never longer than
/// PagerDuty's 1,024 characters.
public enum TitleBuilder {
    /// The title for a record. Without a custom title: the record's Subject, else "<Object> <number or Id>".
    public static func title(_ spec: IncidentTitle?, record: SalesforceRecord) -> String {
        var title: String
        if let template = spec?.template {
            title = TemplateRenderer.render(template) { record[$0].text }
        } else if let spec, !(spec.prefix.isEmpty && spec.fields.isEmpty) {
            let values = spec.fields.map { record[$0].text }.filter { !$0.isEmpty }
            title = spec.prefix + values.joined(separator: spec.separator)
        } else if !record["Subject"].isBlank {
            title = record["Subject"].text
        } else {
            title = ""
        }
        if title.allSatisfy(\.isWhitespace) {
            let number = ["CaseNumber", "IncidentNumber", "Name"].lazy.map { record[$0] }.first { !$0.isBlank }
            title = "\(record.object) \(number?.text ?? record.id)"
        }
        return truncate(title)
    }

    /// Cuts `text` to at most `limit` Unicode scalars, at a character boundary, so no character (an emoji
    /// with modifiers, a letter with combining accents) is split.
    public static func truncate(_ text: String, limit: Int = IncidentTitle.maximumLength) -> String {
        guard text.unicodeScalars.count > limit else { return text }
        var out = ""
        var used = 0
        for character in text {
            let n = character.unicodeScalars.count
            if used + n > limit { break }
            out.append(character)
            used += n
        }
        return out
    }
}
