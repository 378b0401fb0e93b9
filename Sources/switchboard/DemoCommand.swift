import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SwitchboardCore
import SwitchboardPagerDuty
import SwitchboardPipeline
import SwitchboardSalesforce
import SwitchboardServer
import SwitchboardSimulators
import SwitchboardStorage

/// Everything on loopback in one process: the PagerDuty and Salesforce simulators, Switchboard on SQLite in a
/// throwaway directory, connected to both, with the seed's sample rules, and a narrated scenario.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run Switchboard between a simulated PagerDuty account and a simulated Salesforce org, and narrate a scenario.",
        discussion: """
            Starts the PagerDuty and Salesforce simulators and Switchboard (SQLite in a throwaway directory) on free loopback \
            ports, connects them (webhook subscription created, org authorised, trigger secret shared), loads sample rules \
            (the seed FAQ's after-hours high-priority cases, and a case for every incident on service XYZ), then plays: a \
            high-priority case created outside business hours pages on-call, on-call acknowledges, the case follows, a note \
            lands in the Case Feed and as a Case Comment, the incident resolves and the case closes; an incident on XYZ \
            opens a case. --keep-running leaves everything up; Ctrl-C stops it all. Exit codes: 0 the scenario completed, \
            1 a step did not happen in time, 4 the port cannot be bound, 64 wrong usage.
            """)
    @Flag(name: .customLong("keep-running"), help: "Leave everything running after the scenario, until Ctrl-C.") var keepRunning = false
    @Option(help: "Switchboard's port (0: a free one).") var port: Int = 0
    @Option(name: .customLong("step-timeout"), help: "Seconds to wait for each step.") var stepTimeout: Int = 20

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
        guard (1...3600).contains(stepTimeout) else { throw ValidationError("--step-timeout must be from 1 to 3600 seconds") }
    }

    func run() async throws {
        var logger = Logger(label: "switchboard-demo")
        logger.logLevel = .critical
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-demo-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        var pdOptions = PagerDutySimulator.Options()
        pdOptions.retryDelay = .milliseconds(50)
        let pagerDuty = PagerDutySimulator(options: pdOptions)
        let salesforceOptions = SalesforceSimulator.Options()
        let salesforce = SalesforceSimulator(options: salesforceOptions)
        try await pagerDuty.start()
        try await salesforce.start()

        let databaseURL = dir.appendingPathComponent("switchboard.sqlite").path
        let database = try await openDatabase(url: databaseURL, logger: logger)
        try await Migrations.migrate(database, now: Self.now)
        let box = try SecretBox(encodedKey: SecretBox.generateEncodedKey())
        var connection = SalesforceConnection(
            orgId: salesforceOptions.orgId, loginURL: salesforce.baseURL, auth: .clientCredentials, consumerKey: salesforceOptions.consumerKey,
            capture: .trigger, objects: ["Case", "CaseComment"], triggerSecrets: [salesforceOptions.triggerSecret])
        connection.clientSecret = salesforceOptions.clientSecret
        let stored = connection
        let rules = Self.rules(now: Date())
        try await database.transaction { db in
            try await stored.save(box: box, now: Self.now, on: db)
            _ = try await RulesStore.save(document: rules, author: "demo", comment: "sample rules", now: Self.now, on: db)
            try await SettingsStore.set("mapping.notesToFeed", value: "true", now: Self.now, on: db)
            try await SettingsStore.set("mapping.notesToComment", value: "true", now: Self.now, on: db)
        }

        var configuration = ServerConfiguration()
        configuration.port = port
        configuration.databaseURL = databaseURL
        configuration.pipeline.pollInterval = .milliseconds(50)
        configuration.pipeline.backoff = Backoff(baseSeconds: 0.2, capSeconds: 2)
        let dependencies = Dependencies(database: database, secretBox: box, logger: logger)
        let switchboard = SwitchboardServer.Switchboard(configuration: configuration, dependencies: dependencies)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = try await buildApplication(switchboard, dependencies: dependencies, onServerRunning: { portContinuation.yield($0) })
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigint, .sigterm], logger: logger))
        // The port stream ends when the server stops, so a server that never listened (a busy port) is noticed
        // instead of waited for.
        let serving = Task {
            defer { portContinuation.finish() }
            try await group.run()
        }
        func stopAll() async {
            await group.triggerGracefulShutdown()
            _ = try? await serving.value
            await salesforce.stop()
            await pagerDuty.stop()
        }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next() else {
            let reason: String
            do {
                try await serving.value
                reason = "the server stopped before listening"
            } catch {
                reason = bindFailure(error)
            }
            await stopAll()
            throw CLIError(message: "cannot listen on 127.0.0.1:\(port): \(reason)", code: 4)
        }
        let baseURL = "http://127.0.0.1:\(bound)"
        do {
            var pd = PagerDutyConnection(apiKey: pdOptions.apiKey, region: .us, baseURL: pagerDuty.baseURL, fromEmail: "switchboard@example.com")
            let subscription = try await PagerDutyClient(configuration: pd.configuration).createWebhookSubscription(
                url: baseURL + "/webhooks/pagerduty", events: PagerDutyConnection.subscribedEvents, filter: ["type": "account_reference"],
                description: "Switchboard demo")
            pd.subscriptionId = subscription.id
            pd.webhookSecrets = [subscription.secret]
            pd.publicURL = baseURL
            let pdStored = pd
            try await database.transaction { try await pdStored.save(box: box, now: Self.now, on: $0) }
            switchboard.pagerDuty.invalidate()
            switchboard.salesforce.invalidate()
            salesforce.setCapture(.trigger(url: baseURL + "/webhooks/salesforce"))

            say("""
                Switchboard demo: everything runs on this machine, on loopback.
                  Switchboard            \(baseURL)   (SQLite at \(databaseURL); /status, /metrics, /healthz)
                  PagerDuty simulator    \(pagerDuty.baseURL)   (API key \(pdOptions.apiKey); webhook subscription \(subscription.id))
                  Salesforce simulator   \(salesforce.baseURL)   (org \(salesforceOptions.orgId); triggers post signed batches)
                Rules: "SFDC > PD" pages Customer Support for high-priority cases outside support hours; "PD > SFDC" opens a
                case for incidents on XYZ and keeps linked cases in step. Notes sync to the Case Feed and Case Comments.

                """)
            try await scenario(switchboard: switchboard, pagerDuty: pagerDuty, salesforce: salesforce)
        } catch {
            await stopAll()
            if let error = error as? CLIError { throw error }
            throw CLIError(message: "the demo stopped: \(error)".oneLine, code: 1)
        }
        if keepRunning {
            say("\nEverything is still running; try the simulators' /_simulator controls or `switchboard logs --database-url \(databaseURL)`. Ctrl-C stops it all.")
            _ = try? await serving.value
            await salesforce.stop()
            await pagerDuty.stop()
        } else {
            await stopAll()
        }
        say("Stopped; nothing is left running.")
    }

    static var now: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    func say(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// Waits for `condition`, then prints the step with the time it took.
    func step<T>(_ number: Int, _ text: String, _ condition: () async throws -> T?) async throws -> T {
        let start = ContinuousClock.now
        let deadline = start + .seconds(stepTimeout)
        while ContinuousClock.now < deadline {
            if let value = try await condition() {
                let ms = (ContinuousClock.now - start).components
                let elapsed = Double(ms.seconds) * 1000 + Double(ms.attoseconds) / 1e15
                say(String(format: "%2d. %@  (%.0f ms)", number, text, elapsed))
                return value
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw CLIError(message: "step \(number) did not happen within \(stepTimeout) s: \(text)", code: 1)
    }

    func scenario(switchboard: SwitchboardServer.Switchboard, pagerDuty: PagerDutySimulator, salesforce: SalesforceSimulator) async throws {
        let caseId = try salesforce.create(
            "Case", ["Subject": "Checkout fails for EU customers", "Priority": "High", "Status": "New", "Origin": "Web"])
        let caseNumber = salesforce.record("Case", caseId)?["CaseNumber"]?.stringValue ?? ""
        say(" 0. An agent creates high-priority case \(caseNumber) outside support hours (\(caseId)).")
        let database = switchboard.database
        let incident = try await step(1, "The signed trigger post reached Switchboard and the rule paged on-call") { () async throws -> String? in
            try await database.read { try await LinkStore.find(recordId: caseId, on: $0) }.first?.link.incidentId
        }
        let title = pagerDuty.incident(incident)?["title"]?.stringValue ?? ""
        say("    Incident \(incident) on Customer Support: \"\(title)\"")
        _ = pagerDuty.act(incident, "acknowledge", user: "maeve@example.com")
        say(" 2. Maeve (on call) acknowledges the incident in PagerDuty.")
        _ = try await step(3, "The case follows: Status is Working") { salesforce.record("Case", caseId)?["Status"]?.stringValue == "Working" ? true : nil }
        _ = pagerDuty.act(incident, "note", value: "Rolled back the 14:02 payments deploy; error rate back to normal.", user: "maeve@example.com")
        say(" 4. Maeve adds a note to the incident.")
        _ = try await step(5, "The note landed in the Case Feed and as a Case Comment") { () -> Bool? in
            let feed = salesforce.records("FeedItem").contains { $0["ParentId"]?.stringValue.map { SalesforceId.same($0, caseId) } == true }
            let comment = salesforce.records("CaseComment").contains { $0["ParentId"]?.stringValue.map { SalesforceId.same($0, caseId) } == true }
            return feed && comment ? true : nil
        }
        _ = pagerDuty.act(incident, "resolve", user: "maeve@example.com")
        say(" 6. Maeve resolves the incident.")
        _ = try await step(7, "The case closes") { salesforce.record("Case", caseId)?["Status"]?.stringValue == "Closed" ? true : nil }
        let other = pagerDuty.triggerIncident(service: "XYZ", title: "Payments API returning 500s", user: "ravi@example.com")
        let otherId = other?["id"]?.stringValue ?? other?["incident"]?["id"]?.stringValue ?? ""
        say(" 8. Ravi triggers an incident on service XYZ in PagerDuty (\(otherId)).")
        let created = try await step(9, "Switchboard opened a case for it, with every required field") { () async throws -> String? in
            try await database.read { try await LinkStore.find(incidentId: otherId, on: $0) }.first?.link.recordId
        }
        let record = salesforce.record("Case", created)
        say("    Case \(record?["CaseNumber"]?.stringValue ?? created): \"\(record?["Subject"]?.stringValue ?? "")\", Origin \(record?["Origin"]?.stringValue ?? "")")
        let usage = salesforce.apiCallsUsed
        say("Scenario complete. Salesforce API calls used: \(usage); PagerDuty incidents: \(pagerDuty.incidents.count).")
    }

    /// The seed FAQ's rules, with support hours set in a time zone where it is now night, so the after-hours rule
    /// fires whenever the demo runs.
    static func rules(now: Date) -> String {
        let hour = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC") ?? .current, from: now).hour ?? 0
        var offset = (3 - hour + 24) % 24
        if offset > 12 { offset -= 24 }
        // Etc/GMT zones are named with the sign reversed: Etc/GMT-5 is five hours ahead of UTC.
        let zone = offset == 0 ? "UTC" : "Etc/GMT\(offset > 0 ? "-" : "+")\(abs(offset))"
        return """
            version: 1
            calendars:
              - name: support-hours
                timeZone: \(zone)
                weekly:
                  monday: ["09:00-17:00"]
                  tuesday: ["09:00-17:00"]
                  wednesday: ["09:00-17:00"]
                  thursday: ["09:00-17:00"]
                  friday: ["09:00-17:00"]
            rulesets:
              - name: "SFDC > PD"
                rules:
                  - name: Page support on high priority cases after hours
                    object: Case
                    runOn: salesforce
                    conditions:
                      - { field: Priority, operator: equals, value: High }
                      - { field: CreatedDate, operator: outsideBusinessHours, value: support-hours }
                    applyTo: new
                    actions:
                      - action: createIncident
                        service: Customer Support
                        urgency: high
                        title: { prefix: "Case ", fields: [CaseNumber, Subject] }
              - name: "PD > SFDC"
                rules:
                  - name: Open a case for incidents on XYZ
                    object: Case
                    runOn: pagerduty
                    conditions:
                      - { field: pagerduty.eventType, operator: equals, value: Trigger }
                      - { field: pagerduty.serviceName, operator: equals, value: XYZ }
                    applyTo: new
                    actions:
                      - action: createRecord
                      - { action: setField, field: Subject, value: "{{pagerduty.title}}" }
                      - { action: setField, field: Status, value: New }
                      - { action: setField, field: Origin, value: PagerDuty }
                      - { action: setField, field: Priority, value: High }
                  - name: Follow acknowledgements
                    object: Case
                    runOn: pagerduty
                    conditions:
                      - { field: pagerduty.eventType, operator: equals, value: Acknowledge }
                    applyTo: linked
                    actions:
                      - { action: setField, field: Status, value: Working }
                  - name: Close the case when the incident resolves
                    object: Case
                    runOn: pagerduty
                    conditions:
                      - { field: pagerduty.eventType, operator: equals, value: Resolve }
                    applyTo: linked
                    actions:
                      - { action: setField, field: Status, value: Closed }
            """
    }
}
