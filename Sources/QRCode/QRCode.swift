/// ISO/IEC 18004 QR code encoder (work in progress).
public enum QRCodeModule {}
