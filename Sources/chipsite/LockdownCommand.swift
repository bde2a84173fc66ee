import ArgumentParser
import ChipModel
import ChipProtocol
import ChipStore

/// `chipsite lockdown on|off`: the whole site refuses new peer handshakes
/// and every action that moves value while it is on.
struct LockdownCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lockdown",
        abstract: "Lock the whole site down, or lift the lockdown; without an argument, show it.",
        discussion: """
            While on, the site refuses new peer handshakes and CLI actions that move value; \
            nothing is lost, and queued messages wait. It is the setting site.lockdown; \
            `chipsite status` shows it. A running `chipsite serve` reads it from the site file.
            """)

    enum State: String, ExpressibleByArgument, CaseIterable { case on, off }

    @Argument(help: ArgumentHelp("on or off.", valueName: "on|off"))
    var state: State?

    @OptionGroup var site: SiteOptions

    func run() throws {
        let store = try site.open()
        guard let state else {
            print("lockdown \(try store.isLockedDown() ? "on" : "off")")
            return
        }
        try store.setLockdown(state == .on)
        print(
            state == .on
                ? "Lockdown on: no new peer handshakes, no actions that move value. Lift it with `chipsite lockdown off`."
                : "Lockdown off.")
    }
}
