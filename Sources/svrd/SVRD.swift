import ArgumentParser

@main
struct SVRD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "svrd",
        abstract: "Secure Vector Routing (SVR) router for Linux.",
        subcommands: [GenKey.self, PubKey.self])
}
