// swift-tools-version: 6.1
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "Switchboard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchboard", targets: ["switchboard"]),
        .library(name: "SwitchboardCore", targets: ["SwitchboardCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
    ],
    targets: [
        // The pure heart: values, events, rules, the engine. No I/O, no clock, no networking.
        .target(
            name: "SwitchboardCore",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: strictSwift
        ),
        // Storage: one SQL layer over SQLite (default) and PostgreSQL, migrations, repositories, the queues.
        .target(
            name: "SwitchboardStorage",
            dependencies: [
                "SwitchboardCore",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        // The pipeline: durable intake, ordered processing, the outbox and its dispatch, echo suppression, the logger.
        .target(
            name: "SwitchboardPipeline",
            dependencies: [
                "SwitchboardCore",
                "SwitchboardStorage",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // The server: configuration, HTTP routes, metrics, and the application built from them.
        .target(
            name: "SwitchboardServer",
            dependencies: [
                "SwitchboardCore",
                "SwitchboardStorage",
                "SwitchboardPipeline",
                "SwitchboardPagerDuty",
                "SwitchboardSalesforce",
                "CProcessMemory",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // What the C allocator holds, and handing its freed pages back (glibc; elsewhere it says it cannot).
        .target(name: "CProcessMemory"),
        // The PagerDuty connector: REST client, webhook v3 intake, subscription upkeep, the outbound sink.
        .target(
            name: "SwitchboardPagerDuty",
            dependencies: [
                "SwitchboardCore", "SwitchboardStorage", "SwitchboardPipeline",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        // The Salesforce connector: OAuth, REST/Composite/Collections client with an API budget, the outbound sink,
        // and change capture three ways (signed trigger posts, Change Data Capture over CometD, polling).
        .target(
            name: "SwitchboardSalesforce",
            dependencies: [
                "SwitchboardCore", "SwitchboardStorage", "SwitchboardPipeline",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // Simulators of the services Switchboard talks to, for tests and the demo (test infrastructure, held to the
        // real services' documented behaviour).
        .target(
            name: "SwitchboardSimulators",
            dependencies: [
                "SwitchboardCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "switchboard",
            dependencies: [
                "SwitchboardCore",
                "SwitchboardStorage",
                "SwitchboardPipeline",
                "SwitchboardServer",
                "SwitchboardPagerDuty",
                "SwitchboardSalesforce",
                "SwitchboardSimulators",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SwitchboardCoreTests",
            dependencies: [
                "SwitchboardCore",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SwitchboardStorageTests",
            dependencies: ["SwitchboardCore", "SwitchboardStorage", "SwitchboardTestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SwitchboardServerTests",
            dependencies: [
                "SwitchboardCore", "SwitchboardStorage", "SwitchboardPipeline", "SwitchboardServer", "SwitchboardSalesforce",
                "SwitchboardTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SwitchboardSimulatorsTests",
            dependencies: [
                "SwitchboardCore", "SwitchboardSimulators",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SwitchboardPagerDutyTests",
            dependencies: [
                "SwitchboardCore", "SwitchboardStorage", "SwitchboardPipeline", "SwitchboardServer", "SwitchboardPagerDuty",
                "SwitchboardSimulators", "SwitchboardTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SwitchboardSalesforceTests",
            dependencies: [
                "SwitchboardCore", "SwitchboardStorage", "SwitchboardPipeline", "SwitchboardServer", "SwitchboardSalesforce",
                "SwitchboardSimulators", "SwitchboardTestSupport",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // Every seed feature as a user meets it: the `switchboard` executable between the simulators, public boundaries only.
        .testTarget(
            name: "SwitchboardEndToEndTests",
            dependencies: ["SwitchboardCore", "SwitchboardStorage", "SwitchboardSimulators", "SwitchboardTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SwitchboardSystemTests",
            dependencies: [
                "SwitchboardCore", "SwitchboardStorage", "SwitchboardSimulators", "SwitchboardTestSupport",
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strictSwift
        ),
        // Helpers shared by the test targets: databases for both backends, a recording HTTP sink, process control.
        .target(
            name: "SwitchboardTestSupport",
            dependencies: [
                "SwitchboardCore", "SwitchboardStorage", "SwitchboardSimulators",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/SwitchboardTestSupport",
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SwitchboardCLITests",
            dependencies: ["SwitchboardCore"],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "TrivialRoute",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            path: "Benchmarks/TrivialRoute",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "RuleEngineBenchmarks",
            dependencies: [
                "SwitchboardCore",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/RuleEngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
