// TimelineWidget: the timeline bar. The whole history [begin, end] maps onto
// the widget's width; it draws where the guest wrote to the serial console
// (green, upper half) and where interrupts were delivered (orange, lower
// half), each pixel column showing whether any such event falls in its step
// range, and the current position (blue). Clicking or dragging and releasing
// asks to go to the step under the pointer.
#pragma once

#include <QWidget>
#include <cstdint>
#include <memory>
#include <vector>

namespace ttvm::ui {

// Steps of the events the timeline marks, each vector ascending.
struct TimelineMarks {
  std::vector<uint64_t> serial;
  std::vector<uint64_t> interrupts;
};
using MarksPtr = std::shared_ptr<const TimelineMarks>;

class TimelineWidget : public QWidget {
  Q_OBJECT

 public:
  explicit TimelineWidget(QWidget* parent = nullptr);

  void setHistory(uint64_t begin, uint64_t end, MarksPtr marks);
  void setPosition(uint64_t step);
  uint64_t position() const { return position_; }
  uint64_t historyEnd() const { return end_; }
  // The step that pixel column `x` stands for (its first step).
  uint64_t stepAt(int x) const;
  // Whether any mark of `steps` falls in column x's step range.
  bool marked(const std::vector<uint64_t>& steps, int x) const;
  const MarksPtr& marks() const { return marks_; }

  QSize sizeHint() const override { return {600, 28}; }

 signals:
  void seekRequested(quint64 step);

 protected:
  void paintEvent(QPaintEvent* e) override;
  void mousePressEvent(QMouseEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mouseReleaseEvent(QMouseEvent* e) override;

 private:
  int xOf(uint64_t step) const;

  uint64_t begin_ = 0;
  uint64_t end_ = 0;
  uint64_t position_ = 0;
  int dragX_ = -1;  // pointer column while the button is down, else -1
  MarksPtr marks_;
};

}  // namespace ttvm::ui

Q_DECLARE_METATYPE(ttvm::ui::MarksPtr)
