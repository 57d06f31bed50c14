// The one place that picks the packet engine of the data-plane thread: the SVR engine.

import SVR

/// Creates the packet engine of the data-plane thread (on the main thread; it is then moved
/// into the data-plane thread and used only there).
func makeEngine(config: Config) throws(DaemonFailure) -> any PacketEngine {
    do {
        return try SVRRouter(config: config)
    } catch {
        throw DaemonFailure(.setup, "cannot build the SVR engine: \(error)")
    }
}
