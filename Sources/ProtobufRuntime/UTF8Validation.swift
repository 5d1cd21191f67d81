/// UTF-8 validation per the Unicode Standard, Table 3-7 (well-formed byte sequences): rejects
/// overlong forms, surrogates, code points above U+10FFFF and truncated sequences.
@usableFromInline
enum UTF8Validation {
  @inlinable
  static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    var index = 0
    let count = bytes.count
    while index < count {
      let lead = bytes[index]
      if lead < 0x80 {
        index += 1
        continue
      }
      func continuation(_ offset: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) -> Bool {
        index + offset < count && range.contains(bytes[index + offset])
      }
      switch lead {
      case 0xC2...0xDF:
        guard continuation(1) else { return false }
        index += 2
      case 0xE0:
        guard continuation(1, 0xA0...0xBF), continuation(2) else { return false }
        index += 3
      case 0xE1...0xEC, 0xEE...0xEF:
        guard continuation(1), continuation(2) else { return false }
        index += 3
      case 0xED:
        guard continuation(1, 0x80...0x9F), continuation(2) else { return false }
        index += 3
      case 0xF0:
        guard continuation(1, 0x90...0xBF), continuation(2), continuation(3) else { return false }
        index += 4
      case 0xF1...0xF3:
        guard continuation(1), continuation(2), continuation(3) else { return false }
        index += 4
      case 0xF4:
        guard continuation(1, 0x80...0x8F), continuation(2), continuation(3) else { return false }
        index += 4
      default:
        return false
      }
    }
    return true
  }
}
