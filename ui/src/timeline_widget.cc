#include "ttvm/ui/timeline_widget.h"

#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>
#include <algorithm>

namespace ttvm::ui {

TimelineWidget::TimelineWidget(QWidget* parent) : QWidget(parent) {
  setMinimumHeight(22);
  setMouseTracking(true);
  setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
}

void TimelineWidget::setHistory(uint64_t begin, uint64_t end, MarksPtr marks) {
  begin_ = begin;
  end_ = std::max(begin, end);
  marks_ = std::move(marks);
  update();
}

void TimelineWidget::setPosition(uint64_t step) {
  position_ = step;
  update();
}

uint64_t TimelineWidget::stepAt(int x) const {
  const int w = std::max(1, width() - 1);
  x = std::clamp(x, 0, w);
  // In long double: span * x can pass 2^64 for very long histories; the
  // result is exact while span * x < 2^64 (x87 64-bit mantissa).
  const long double span = static_cast<long double>(end_ - begin_);
  return begin_ + static_cast<uint64_t>(span * x / w);
}

int TimelineWidget::xOf(uint64_t step) const {
  if (end_ == begin_) return 0;
  const long double off = static_cast<long double>(std::clamp(step, begin_, end_) - begin_);
  return static_cast<int>(off * std::max(1, width() - 1) / static_cast<long double>(end_ - begin_));
}

bool TimelineWidget::marked(const std::vector<uint64_t>& steps, int x) const {
  const uint64_t lo = stepAt(x);
  const uint64_t hi = x + 1 >= width() ? end_ + 1 : stepAt(x + 1);
  auto it = std::lower_bound(steps.begin(), steps.end(), lo);
  return it != steps.end() && *it < std::max(hi, lo + 1);
}

void TimelineWidget::paintEvent(QPaintEvent*) {
  QPainter p(this);
  const int h = height();
  p.fillRect(rect(), QColor(0xf4, 0xf4, 0xf4));
  p.setPen(QColor(0xb0, 0xb0, 0xb0));
  p.drawRect(rect().adjusted(0, 0, -1, -1));
  if (marks_ && end_ > begin_) {
    // One test per pixel column: cost O(width · log events), not O(events).
    for (int x = 0; x < width(); ++x) {
      if (marked(marks_->serial, x)) {
        p.setPen(QColor(0x2e, 0x9e, 0x44));
        p.drawLine(x, 2, x, h / 2 - 1);
      }
      if (marked(marks_->interrupts, x)) {
        p.setPen(QColor(0xe0, 0x8a, 0x1e));
        p.drawLine(x, h / 2 + 1, x, h - 3);
      }
    }
  }
  const int cx = dragX_ >= 0 ? dragX_ : xOf(position_);
  p.fillRect(QRect(cx - 1, 0, 3, h), QColor(0x1f, 0x5f, 0xd0));
}

void TimelineWidget::mousePressEvent(QMouseEvent* e) {
  if (e->button() != Qt::LeftButton || !isEnabled()) return;
  dragX_ = static_cast<int>(e->position().x());
  update();
}

void TimelineWidget::mouseMoveEvent(QMouseEvent* e) {
  const int x = static_cast<int>(e->position().x());
  if (dragX_ >= 0) {
    dragX_ = x;
    update();
  }
  QToolTip::showText(e->globalPosition().toPoint(), QStringLiteral("step %1").arg(stepAt(x)), this);
}

void TimelineWidget::mouseReleaseEvent(QMouseEvent* e) {
  if (e->button() != Qt::LeftButton || dragX_ < 0) return;
  const int x = static_cast<int>(e->position().x());
  dragX_ = -1;
  update();
  emit seekRequested(stepAt(x));
}

}  // namespace ttvm::ui
