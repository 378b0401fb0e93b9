import Foundation
import Synchronization

/// A `switchboard` process started the way an operator would, on a free port.
public final class ServeProcess: @unchecked Sendable {
    public let process: Process
    public private(set) var port: Int = 0
    public let output: String

    /// The built executable, beside the test bundle.
    public static var binary: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir.appendingPathComponent("switchboard"), dir.deletingLastPathComponent().appendingPathComponent("switchboard")]
        where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate.path
        }
        return dir.appendingPathComponent("switchboard").path
    }

    /// Starts `switchboard serve` and waits (without blocking a thread) until it listens.
    public static func start(arguments: [String], environment: [String: String] = [:], outputFile: String, timeout: TimeInterval = 30) async throws -> ServeProcess {
        let serve = try ServeProcess(arguments: arguments, environment: environment, outputFile: outputFile, wait: false)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if serve.readPort() { return serve }
            if !serve.process.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        serve.process.terminate()
        throw ServeError(message: "switchboard serve did not start: \(serve.log.suffix(2000))")
    }

    private func readPort() -> Bool {
        guard let text = try? String(contentsOfFile: output, encoding: .utf8),
            let range = text.range(of: "switchboard listening on http://127.0.0.1:")
        else { return false }
        guard let p = Int(text[range.upperBound...].prefix { $0.isNumber }) else { return false }
        port = p
        return true
    }

    /// Starts `switchboard serve` and waits until it listens.
    public convenience init(arguments: [String], environment: [String: String] = [:], outputFile: String, timeout: TimeInterval = 30) throws {
        try self.init(arguments: arguments, environment: environment, outputFile: outputFile, wait: true, timeout: timeout)
    }

    private init(arguments: [String], environment: [String: String], outputFile: String, wait: Bool, timeout: TimeInterval = 30) throws {
        _ = FileManager.default.createFile(atPath: outputFile, contents: nil)
        output = outputFile
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--port", "0"] + arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWITCHBOARD_") }
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: outputFile))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        guard wait else { return }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if readPort() { return }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let text = (try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? ""
        process.terminate()
        throw ServeError(message: "switchboard serve did not start: \(text.suffix(2000))")
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    public func kill9() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then wait; returns the exit status.
    @discardableResult
    public func terminate(timeout: TimeInterval = 20) -> Int32 {
        process.terminate()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { kill9() }
        process.waitUntilExit()
        return process.terminationStatus
    }

    public var log: String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
}

public struct ServeError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Runs the `switchboard` command line to completion.
/// Async, so that waiting for the process never holds one of the few threads the tests' tasks share.
public func runSwitchboard(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) async throws -> (status: Int32, output: String) {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("sb-cli-\(UUID().uuidString)").path
    _ = FileManager.default.createFile(atPath: file, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: file) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: ServeProcess.binary)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWITCHBOARD_") }
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
    if process.isRunning {
        // A command that ignores SIGTERM must not hang the whole test run.
        process.terminate()
        let grace = Date().addingTimeInterval(5)
        while process.isRunning && Date() < grace { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
    process.waitUntilExit()
    return (process.terminationStatus, (try? String(contentsOfFile: file, encoding: .utf8)) ?? "")
}

import AsyncHTTPClient
import NIOCore

/// Small HTTP helpers for tests that talk to real processes.
public enum HTTP {
    /// POSTs JSON; returns the status, or nil when the server could not be reached.
    public static func post(_ url: String, _ body: String, headers: [String: String] = [:], timeout: TimeAmount = .seconds(10)) async -> (status: Int, body: String)? {
        await send("POST", url, json: body, headers: headers, timeout: timeout)
    }

    /// Any method, with an optional JSON body; nil when the server could not be reached.
    public static func send(
        _ method: String, _ url: String, json body: String? = nil, headers: [String: String] = [:], timeout: TimeAmount = .seconds(10)
    ) async -> (status: Int, body: String)? {
        var request = HTTPClientRequest(url: url)
        request.method = .init(rawValue: method)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: timeout)
            let bytes = try await response.body.collect(upTo: 1 << 24)
            return (Int(response.status.code), String(buffer: bytes))
        } catch {
            return nil
        }
    }

    public static func get(_ url: String, timeout: TimeAmount = .seconds(10)) async -> (status: Int, body: String)? {
        do {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: timeout)
            let bytes = try await response.body.collect(upTo: 1 << 24)
            return (Int(response.status.code), String(buffer: bytes))
        } catch {
            return nil
        }
    }
}
