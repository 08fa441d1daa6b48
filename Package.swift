// swift-tools-version:6.2
import Foundation
import PackageDescription

let package = Package(
    name: "Coffer",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "coffer", targets: ["coffer"]),
        .library(name: "CofferCore", targets: ["CofferCore"]),
        .library(name: "CofferServer", targets: ["CofferServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        // prctl and RLIMIT_MEMLOCK, which Swift's Glibc module does not export.
        .target(name: "CCofferSystem"),
        // sqlite3_config, which is variadic and so cannot be called from Swift.
        .target(name: "CSQLiteTuning", linkerSettings: [.linkedLibrary("sqlite3")]),
        .target(
            name: "CofferCrypto",
            dependencies: ["CSodium"]
        ),
        .target(
            name: "CofferStore",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "CofferCore",
            dependencies: [
                "CofferCrypto",
                "CofferStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "CofferProtocol",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(
            name: "CofferServer",
            dependencies: [
                "CofferCore",
                "CofferProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "coffer",
            dependencies: [
                "CofferCore",
                "CofferServer",
                "CofferStore",
                "CofferProtocol",
                "CCofferSystem",
                "CSQLiteTuning",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "CofferCryptoTests", dependencies: ["CofferCrypto"]),
        .testTarget(name: "CofferStoreTests", dependencies: ["CofferStore"]),
        .testTarget(
            name: "CofferCoreTests",
            dependencies: ["CofferCore", "CofferCrypto", "CofferStore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // What the fuzzer checks for each input; the corpus test replays it without the fuzzer.
        .target(
            name: "CofferFuzzHarness",
            dependencies: ["CofferProtocol", "CofferCore", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/CofferFuzzHarness"
        ),
        .testTarget(
            name: "CofferFuzzHarnessTests",
            dependencies: ["CofferFuzzHarness", "CofferProtocol", "CofferCore"]
        ),
        .testTarget(
            name: "CofferProtocolTests",
            dependencies: [
                "CofferProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "CofferServerTests",
            dependencies: [
                "CofferServer", "CofferCore", "CofferProtocol",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "CofferEndToEndTests",
            dependencies: ["coffer"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// The libFuzzer executable exists only for `.ci/fuzz` (COFFER_FUZZ=1): its entry point calls
// libFuzzer's driver, which only -sanitize=fuzzer links in, so an ordinary build could not link it.
if ProcessInfo.processInfo.environment["COFFER_FUZZ"] == "1" {
    package.targets.append(
        .executableTarget(
            name: "CofferFuzzer",
            dependencies: ["CofferFuzzHarness"],
            path: "Fuzz/CofferFuzzer",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ))
}

// Cross-module optimisation for Coffer's own targets in release builds: the request path crosses
// five of them (protocol, server, core, store, crypto), and without it every generic helper
// called across a target boundary (a keyed hash's message parts, a scratch key slot) runs
// unspecialised, looking its type metadata up at run time on every request.
for target in package.targets where target.type == .regular || target.type == .executable {
    target.swiftSettings =
        (target.swiftSettings ?? []) + [
            .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))
        ]
}
