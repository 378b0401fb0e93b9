import Foundation
import SwitchboardTestSupport
import Testing

@Suite("switchboard demo")
struct DemoTests {
    @Test("The scenario completes step by step, then everything stops")
    func scenario() async throws {
        let run = try await runSwitchboard(["demo"], timeout: 120)
        #expect(run.status == 0, "\(run.output)")
        for line in [
            "Switchboard demo: everything runs on this machine", "1. The signed trigger post reached Switchboard and the rule paged on-call",
            "3. The case follows: Status is Working", "5. The note landed in the Case Feed and as a Case Comment", "7. The case closes",
            "9. Switchboard opened a case for it, with every required field", "Scenario complete.", "Stopped; nothing is left running.",
        ] {
            #expect(run.output.contains(line), "missing: \(line)\n\(run.output)")
        }
        #expect(run.output.contains("\"Case 0000"), "the incident has the custom title")
    }

    @Test("--keep-running stays up until Ctrl-C, then stops cleanly")
    func keepRunning() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let out = dir.file("demo.log")
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServeProcess.binary)
        process.arguments = ["demo", "--keep-running"]
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        var text = ""
        for _ in 0..<600 {
            text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            if text.contains("Ctrl-C stops it all") { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(text.contains("Ctrl-C stops it all"), "\(text)")
        let url = try #require(text.range(of: "Switchboard            http://").map { String(text[$0.upperBound...].prefix { $0 != " " }) })
        #expect(await HTTP.get("http://" + url + "/healthz")?.status == 200)
        kill(process.processIdentifier, SIGINT)
        for _ in 0..<200 where process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning)
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(await HTTP.get("http://" + url + "/healthz") == nil, "nothing is left listening")
    }
}
