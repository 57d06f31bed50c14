// swift-tools-version:6.1
//
// svrd: a Secure Vector Routing (SVR) router for Linux, in Swift.
// Module map: see ../shared/DESIGN.md and docs/architecture.md.

import PackageDescription

/// Settings shared by every Swift target (Swift 6 mode is the default for tools 6.x).
let swiftSettings: [SwiftSetting] = []

let package = Package(
    name: "svrd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "svrd", targets: ["svrd"]),
        .executable(name: "svrbench", targets: ["svrbench"]),
        .library(name: "SVR", targets: ["SVR"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // ---- C libraries and shims -------------------------------------------------------
        .systemLibrary(
            name: "CNetlink", pkgConfig: "libnftnl",
            providers: [.apt(["libmnl-dev", "libnftnl-dev"])]),
        .systemLibrary(
            name: "COpenSSL", pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]),
        .target(
            name: "CShim",
            dependencies: ["COpenSSL"],  // hmac.c: low-level SHA-256/SHA-1 (allocation-free HMAC)
            cSettings: [.define("_GNU_SOURCE")]),

        // ---- libraries -------------------------------------------------------------------
        .target(
            name: "TunIO",
            dependencies: ["CShim"],
            swiftSettings: swiftSettings),
        .target(
            name: "Netlink",
            dependencies: ["CNetlink", "CShim"],
            swiftSettings: swiftSettings),
        .target(
            name: "SVR",
            dependencies: [
                "COpenSSL", "CShim",
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: swiftSettings),

        // ---- executables -----------------------------------------------------------------
        .executableTarget(
            name: "svrd",
            dependencies: [
                "TunIO", "Netlink", "SVR", "CShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "svrbench",
            dependencies: ["TunIO", "Netlink", "SVR", "CShim"],
            swiftSettings: swiftSettings),

        // ---- tests -----------------------------------------------------------------------
        .target(
            name: "TestSupport",
            dependencies: ["CShim"],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings),
        .testTarget(
            name: "TunIOTests",
            dependencies: ["TunIO", "Netlink", "TestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "NetlinkTests",
            dependencies: ["Netlink", "TestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "SVRTests",
            dependencies: ["SVR", "TestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "E2ETests",
            dependencies: ["TestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "SVRDTests",
            dependencies: ["svrd", "SVR", "Netlink", "TestSupport"],
            swiftSettings: swiftSettings),
    ]
)
