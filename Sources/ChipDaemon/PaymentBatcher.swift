import ChipModel
import ChipProtocol
import ChipStore

/// Group commit for devices' payments (10.5's benchmark): a payment that
/// arrives while another commit is under way waits for it, then goes with
/// every other one that waited, in one write transaction and one fsync
/// (`SiteStore.payDeviceChits`). Each payment keeps its own savepoint and
/// its own reply in the cache, so a refused one is refused alone.
actor PaymentBatcher {
    /// Most payments in one transaction.
    static let maxBatch = 64

    let store: SiteStore
    private var waiting: [(SiteStore.DevicePaymentItem, CheckedContinuation<Result<ChitRecord, any Error>, Never>)] = []
    private var committing = false

    init(store: SiteStore) {
        self.store = store
    }

    /// Commits `item` with whatever else is waiting; its result.
    func pay(_ item: SiteStore.DevicePaymentItem, now: Int64) async -> Result<ChitRecord, any Error> {
        await withCheckedContinuation { continuation in
            waiting.append((item, continuation))
            if !committing {
                committing = true
                Task { await drain(now: now) }
            }
        }
    }

    private func drain(now: Int64) async {
        while !waiting.isEmpty {
            let batch = Array(waiting.prefix(Self.maxBatch))
            waiting.removeFirst(batch.count)
            let results = await commit(batch.map(\.0), now: now)
            for (entry, result) in zip(batch, results) { entry.1.resume(returning: result) }
        }
        committing = false
    }

    /// The store's transaction, off the actor so that payments keep queueing meanwhile.
    private nonisolated func commit(_ items: [SiteStore.DevicePaymentItem], now: Int64) async -> [Result<ChitRecord, any Error>] {
        store.payDeviceChits(items, now: now)
    }
}
