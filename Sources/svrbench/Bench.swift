import Glibc

/// Registry of micro-benchmarks. Each benchmark file adds itself to `all`.
enum Bench {
    /// name, one-line description, entry point taking the remaining arguments.
    static let all: [(name: String, about: String, run: @Sendable ([String]) -> Void)] = [
        ("crypto", "seal/open Gbit/s per cipher suite at 1400 B, one core", CryptoBench.run),
        ("rtnl", "rtnetlink route add/replace/delete/dump per route in a private namespace [COUNT]", NetlinkBench.run),
        ("nat", "packet layer: double-NAT rewrite, checksum, metadata insert/strip (ns/op)", PacketBench.run),
        (name: "tun", about: TunBench.about, run: TunBench.run),
        (name: "nft", about: NftBench.about, run: NftBench.run),
        ("session", "LPM, classify+ports+insert, session lookup, bytes/session [SESSIONS]", SessionBench.run),
        ("metadata", "ns per encode/decode of spec TV1's forward metadata block [ITERATIONS]", MetadataBench.run),
        ("wan", WanBench.about, WanBench.run),
        (name: "engine", about: EngineBench.about, run: EngineBench.run),
    ]

    static func main(_ args: [String]) {
        let name = args.count > 1 ? args[1] : "help"
        if let b = all.first(where: { $0.name == name }) {
            b.run(Array(args.dropFirst(2)))
            return
        }
        print("usage: svrbench NAME [ARGS]\n")
        for b in all { print("  \(b.name.padding(12))\(b.about)") }
        if name != "help" { exit(2) }
    }
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self + " " : self + String(repeating: " ", count: n - count) }
}
