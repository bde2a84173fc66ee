import Noise
print("noise-bench: not yet")
