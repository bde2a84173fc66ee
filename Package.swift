// swift-tools-version:6.1
// The package graph mirrors the architecture (doc/architecture.md):
//   CSodium, CZlib      C libraries, linked from their static archives in release
//   CMalloc             glibc's malloc_trim (serve gives freed memory back after many closes)
//   Noise               the Noise Protocol Framework; knows nothing of MyCHIPs
//   ChipModel           pure MyCHIPs model: ids, CHAD, certificates, canonical JSON, signatures
//   ChipProtocol        pure: typed site messages and the dialogs' deciders (no SQL, no sockets, no clock)
//   ChipViews           pure: the JSON views that --json (and the coming user port) print
//   ChipStore           the site file (SQLite through GRDB): load snapshots, apply decisions
//   ChipChannel         site-to-site channels as pure state machines: frames, I/N/K/A/T, envelopes
//   ChipPeer            SwiftNIO at the edge: TCP, frame codec, limits, dialing
//   ChipUserPort        SwiftNIO at the user port's edge: listener, client, limits (ChipPeer's codec)
//   ChipDaemon          the site engine: the daemon (`serve`), outbox, policy
//   QRCode              ISO/IEC 18004 QR encoder and renderers (terminal, PNG, SVG)
//   chipsite            the thin command-line front end
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6)
]

let package = Package(
    name: "chipsite",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "chipsite", targets: ["chipsite"]),
        .executable(name: "noise-bench", targets: ["NoiseBench"]),
        .executable(name: "site-bench", targets: ["SiteBench"]),
        .executable(name: "chit-bench", targets: ["ChitBench"]),
        .executable(name: "lift-bench", targets: ["LiftBench"]),
        .executable(name: "user-bench", targets: ["UserBench"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0")
    ],
    targets: [
        .systemLibrary(name: "CSodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMalloc"),

        .target(name: "Noise", dependencies: ["CSodium"], swiftSettings: strict),
        .target(name: "ChipModel", dependencies: ["CSodium"], swiftSettings: strict),
        .target(name: "ChipProtocol", dependencies: ["ChipModel"], swiftSettings: strict),
        .target(name: "ChipViews", dependencies: ["ChipModel", "ChipProtocol"], swiftSettings: strict),
        .target(name: "ChipChannel", dependencies: ["Noise", "ChipModel"], swiftSettings: strict),
        .target(
            name: "ChipPeer",
            dependencies: [
                "ChipChannel", "ChipModel", "Noise",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log")
            ],
            swiftSettings: strict),
        .target(
            name: "ChipUserPort",
            dependencies: [
                "ChipPeer", "ChipChannel", "ChipModel", "Noise",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log")
            ],
            swiftSettings: strict),
        .target(
            name: "ChipDaemon",
            dependencies: [
                "ChipPeer", "ChipUserPort", "ChipChannel", "ChipStore", "ChipProtocol", "ChipModel", "ChipViews", "Noise",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log")
            ],
            swiftSettings: strict),
        .target(name: "QRCode", dependencies: ["CZlib"], swiftSettings: strict),
        .target(
            name: "ChipStore",
            dependencies: ["ChipModel", "ChipProtocol", "ChipChannel", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict),
        .executableTarget(
            name: "chipsite",
            dependencies: [
                "ChipModel", "ChipStore", "ChipProtocol", "ChipViews", "ChipDaemon", "ChipChannel", "ChipUserPort", "Noise", "QRCode", "CMalloc",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log")
            ],
            swiftSettings: strict),
        .executableTarget(name: "NoiseBench", dependencies: ["Noise", "CSodium"], swiftSettings: strict),
        .executableTarget(
            name: "SiteBench", dependencies: ["ChipChannel", "ChipModel", "ChipPeer", "ChipStore", "ChipProtocol", "Noise", "CSodium"],
            swiftSettings: strict),
        .executableTarget(
            name: "ChitBench",
            dependencies: [
                "ChipDaemon", "ChipStore", "ChipProtocol", "ChipModel", "ChipPeer", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log")
            ],
            swiftSettings: strict),

        .executableTarget(
            name: "LiftBench",
            dependencies: [
                "BenchSupport", "ChipDaemon", "ChipStore", "ChipProtocol", "ChipModel", "ChipPeer",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log")
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "UserBench",
            dependencies: [
                "BenchSupport", "ChipUserPort", "ChipChannel", "ChipModel", "ChipStore", "Noise",
                .product(name: "GRDB", package: "GRDB.swift")
            ],
            swiftSettings: strict),
        // What the benchmarks that drive real serve processes share (not shipped).
        .target(name: "BenchSupport", swiftSettings: strict),

        .testTarget(
            name: "NoiseTests", dependencies: ["Noise", "CSodium"], exclude: ["Resources"], swiftSettings: strict),
        .testTarget(name: "ChipModelTests", dependencies: ["ChipModel"], swiftSettings: strict),
        .testTarget(name: "ChipViewsTests", dependencies: ["ChipViews", "ChipProtocol", "ChipModel"], swiftSettings: strict),
        .testTarget(name: "ChipChannelTests", dependencies: ["ChipChannel", "ChipModel", "Noise"], swiftSettings: strict),
        .testTarget(
            name: "UserPortEdgeTests",
            dependencies: [
                "ChipUserPort", "ChipPeer", "ChipChannel", "ChipModel", "Noise", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log")
            ],
            swiftSettings: strict),
        .testTarget(name: "UserPortTests", dependencies: ["ChipProtocol", "ChipModel", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "ChipDaemonTests",
            dependencies: ["ChipDaemon", "ChipPeer", "ChipChannel", "ChipStore", "ChipProtocol", "ChipModel", "Noise", "TestSupport"],
            swiftSettings: strict),
        .testTarget(name: "QRCodeTests", dependencies: ["QRCode", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "ChipStoreTests", dependencies: ["ChipStore", "ChipProtocol", "ChipChannel", "ChipModel", "Noise", "TestSupport"],
            swiftSettings: strict),
        .testTarget(name: "ChipProtocolTests", dependencies: ["ChipProtocol", "ChipModel", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "LiftTests", dependencies: ["ChipProtocol", "ChipModel", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "ChipModel", "ChipProtocol", "ChipChannel", "ChipUserPort", "Noise", "TestSupport",
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "Logging", package: "swift-log")
            ],
            exclude: ["Resources"], swiftSettings: strict),
        // Helpers every test target may share (a seeded generator); not shipped.
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: strict)
    ]
)
