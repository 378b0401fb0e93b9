import ArgumentParser
import Foundation
import SwitchboardCore
import SwitchboardPipeline
import SwitchboardStorage

/// Exit codes, documented in the README.
enum ExitStatus {
    static let invalidInput: Int32 = 1
    static let unreadableFile: Int32 = 2
    static let usage: Int32 = 64
}

/// An error the command line reports in one line, with its exit code.
struct CLIError: Error, CustomStringConvertible {
    var message: String
    var code: Int32

    var description: String { message }

    static func invalid(_ message: String) -> CLIError { CLIError(message: message, code: ExitStatus.invalidInput) }
    static func unreadable(_ message: String) -> CLIError { CLIError(message: message, code: ExitStatus.unreadableFile) }
}

@main
struct Switchboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "A two-way integration between Salesforce Service Cloud and PagerDuty.",
        discussion: """
            Exit codes: 0 success; 1 invalid input (a rules file, event or configuration that does not validate); \
            2 a file that cannot be read (missing, too large, not UTF-8); 3 the database cannot be reached or used; \
            4 the port cannot be bound; 64 wrong usage (unknown flag, missing argument).
            """,
        subcommands: [
            ServeCommand.self, MigrateCommand.self, StatusCommand.self, RulesCommand.self, LinksCommand.self, EventsCommand.self, DeadLettersCommand.self, LogsCommand.self,
            SettingsCommand.self, DemoCommand.self, PagerDutyCommand.self, SalesforceCommand.self, SimulateCommand.self,
        ]
    )

    static func main() async {
        do {
            var command = try parseAsRoot()
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            Foundation.exit(error.code)
        } catch {
            // Usage errors exit with 64, help and --version with 0.
            exit(withError: error)
        }
    }
}

/// Reads a UTF-8 text file, refusing missing, oversized and binary files with a one-line reason.
func readTextFile(_ path: String, limit: Int, what: String) throws(CLIError) -> String {
    let manager = FileManager.default
    var isDirectory: ObjCBool = false
    guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw .unreadable("\(what) \(path) does not exist")
    }
    guard !isDirectory.boolValue else { throw .unreadable("\(what) \(path) is a directory, not a file") }
    if let size = (try? manager.attributesOfItem(atPath: path))?[.size] as? NSNumber, size.intValue > limit {
        throw .unreadable("\(what) \(path) is \(size.intValue) bytes; the limit is \(limit) bytes")
    }
    guard let handle = FileHandle(forReadingAtPath: path) else { throw .unreadable("\(what) \(path) cannot be opened (check its permissions)") }
    defer { try? handle.close() }
    // Read one byte past the limit so files that grow (or special files) are still bounded.
    let data = (try? handle.read(upToCount: limit + 1)) ?? Data()
    guard data.count <= limit else { throw .unreadable("\(what) \(path) is larger than the limit of \(limit) bytes") }
    guard let text = String(data: data, encoding: .utf8) else { throw .unreadable("\(what) \(path) is not UTF-8 text") }
    return text
}
