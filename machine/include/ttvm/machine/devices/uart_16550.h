// A 16550A UART (COM1 at 0x3F8, IRQ 4), modelled as real drivers see it:
//
//  - Transmission is instantaneous: a byte written to THR goes to the console
//    at once, so LSR.THRE and LSR.TEMT read as 1 again right after the write.
//    The THRE interrupt follows the 16550 (and QEMU's model): it becomes
//    pending after a THR write completes and when IER.ETBEI is set while THR is
//    empty; it is cleared by a THR write, by reading IIR while it is the
//    reported source, or by clearing IER.ETBEI.
//  - Receive: a 16-byte FIFO (1 byte when FCR.0 is clear) fed by receive()
//    (host terminal input), or by THR writes in loopback mode (MCR.4). RDA
//    interrupts fire at the FCR trigger level; a character-timeout interrupt
//    (IIR 0xC) fires 4 character times after the last received byte when
//    bytes below the trigger level wait (time from the VirtualClock).
//  - Interrupt priority: line status > received data/timeout > THRE > modem
//    status. The interrupt line is IRQ 4, level = "an enabled source is
//    pending"; like QEMU, MCR.OUT2 does not gate it.
//  - Loopback: MSR's upper bits reflect MCR (CTS=RTS, DSR=DTR, RI=OUT1,
//    DCD=OUT2) and MSR delta bits track their changes.
//  - Line input (`ttvm record --serial-input FILE`): the far end of the line
//    holds a byte string and sends it with hardware flow control, paced by
//    the guest's reads. It sends its next byte exactly when all of these hold:
//    the receive FIFO is empty, the guest asserts RTS (MCR bit 1) and the
//    UART is not in loopback. The condition is re-evaluated at the end of
//    every guest access to the UART (and when the input is set), so a byte
//    arrives in the access that makes the condition true: the RBR read that
//    empties the FIFO (the next byte is there at once), or the MCR/FCR write
//    that raises RTS, leaves loopback or clears the FIFO. Arrival thus
//    depends only on what the guest did, never on wall time, so two
//    recordings with the same input are identical. A byte sent but discarded
//    by a FIFO reset before the guest read it is sent again (the guest loses
//    no input to its own probing). The line's position is host input, not
//    device state: saveState() does not hold it.
//  - Input and the trace. Every byte that arrives from outside (receive()
//    from the terminal, or the line) is shown to the input observer as it
//    enters the FIFO: the recorder logs it (kSerialInput). A replay sets a
//    line source instead of line input: when the line may send a byte, the
//    UART asks the source (the trace's line byte at this step, if the
//    recording sent one there), and terminal bytes are handed to receive()
//    at the instruction boundary where they arrived. In a trace whose replay
//    does not run the UART (before 1.3), what the guest received is in the
//    trace as its RBR/LSR reads instead, so no replay needs an input file.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "ttvm/machine/device.h"
#include "ttvm/machine/irq.h"
#include "ttvm/machine/virtual_clock.h"

namespace ttvm::machine {

class Uart16550 final : public Device, public PortDevice, public TimedDevice {
 public:
  static constexpr uint16_t kCom1 = 0x3F8;
  static constexpr unsigned kCom1Irq = 4;
  static constexpr unsigned kFifoSize = 16;

  Uart16550(std::string name, ConsoleSink* console, IrqLine irq, VirtualClock* clock);

  std::string_view name() const override { return name_; }
  void saveState(StateWriter& out) const override;
  Status loadState(StateReader& in) override;

  uint32_t portRead(uint16_t port, unsigned size) override;
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;

  std::optional<uint64_t> nextDeadlineNs() const override;
  void advanceTo(uint64_t nowNs) override;

  // A byte arrives on the line (host input). Returns false when the receive
  // FIFO is full (the byte is lost and LSR.OE set, as on hardware).
  bool receive(uint8_t byte);
  // Room in the receive FIFO (the host feeds input only when there is room).
  unsigned receiveRoom() const;
  // The far end's bytes for line input (see "Line input" above); replaces
  // any bytes not yet sent.
  void setLineInput(std::vector<uint8_t> bytes);
  // Bytes of the line input not yet read by the guest.
  size_t lineInputLeft() const { return line_.size() - linePos_ + (lineByteInFifo_ ? 1 : 0); }
  // Called with each byte from outside as it enters the FIFO; `line` says
  // whether it came from the line (in a guest access) or from receive().
  using InputObserver = std::function<void(uint8_t byte, bool line)>;
  void observeInput(InputObserver observer) { observer_ = std::move(observer); }
  // Replaces the line input (see "Input and the trace" above).
  using LineSource = std::function<std::optional<uint8_t>()>;
  void setLineSource(LineSource source) { lineSource_ = std::move(source); }

  bool irqLevel() const { return irqLevel_; }

 private:
  uint8_t readReg(unsigned reg);
  void writeReg(unsigned reg, uint8_t v);
  void transmit(uint8_t byte);
  void pushRx(uint8_t byte);
  void updateIrq();
  void updateMsrFromLoopback(uint8_t oldMcr);
  // Sends the line input's next byte if the guest can take it now.
  void feedLine();
  // Empties the receive FIFO; a line byte in it will be sent again.
  void clearRx();
  unsigned triggerLevel() const;
  uint64_t charTimeNs() const;

  std::string name_;
  ConsoleSink* console_;
  IrqLine irq_;
  VirtualClock* clock_;

  uint8_t ier_ = 0, iir_ = 0x01, fcr_ = 0, lcr_ = 0, mcr_ = 0, lsr_ = 0x60, msr_ = 0, scr_ = 0;
  uint16_t divisor_ = 12;  // 9600 baud
  bool thrInterruptPending_ = false;
  bool timeoutPending_ = false;
  std::array<uint8_t, kFifoSize> rx_{};
  unsigned rxHead_ = 0, rxCount_ = 0;
  uint64_t timeoutDeadlineNs_ = 0;  // 0 = none
  bool irqLevel_ = false;
  // Line input (host side, not saved): the bytes, the next one to send, and
  // whether the byte before it sits unread in the FIFO (then at its head:
  // a line byte is sent only into an empty FIFO).
  std::vector<uint8_t> line_;
  size_t linePos_ = 0;
  bool lineByteInFifo_ = false;
  InputObserver observer_;
  LineSource lineSource_;
};

}  // namespace ttvm::machine
