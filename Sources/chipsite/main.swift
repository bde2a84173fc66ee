import ChipModel
import ChipStore
print(SodiumCheck.ready(), try StoreProbe.open("/tmp/probe.db"))
