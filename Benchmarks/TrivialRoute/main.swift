// The HTTP benchmarks' yardstick: a Hummingbird application with one route that does no work, so that the intake's
// rate can be read against what this machine serves at all (machines of the same kind differ several-fold).
import Hummingbird

let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 8080
let router = Router()
router.get("healthz") { _, _ in "ok" }
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
