#include "ttvm/ui/bookmark_file.h"

#include <QFile>
#include <QSaveFile>
#include <QStringList>
#include <QTextStream>
#include <algorithm>

namespace ttvm::ui {
namespace {

const QString kMagic = QStringLiteral("ttvm-bookmarks 1 ");

}  // namespace

QString traceIdentity(const TraceHeader& header) {
  if (header.traceId.empty()) return QStringLiteral("created %1").arg(header.createdUnixNs);
  return QStringLiteral("id %1%2")
      .arg(header.traceId.hi, 16, 16, QLatin1Char('0'))
      .arg(header.traceId.lo, 16, 16, QLatin1Char('0'));
}

QString bookmarkFilePath(const QString& tracePath) {
  return tracePath + QStringLiteral(".bookmarks");
}

bool saveBookmarks(const QString& file, const QString& identity, const std::vector<Bookmark>& marks,
                   QString* error) {
  if (marks.empty()) {
    if (!QFile::exists(file) || QFile::remove(file)) return true;
    if (error) *error = QStringLiteral("cannot remove %1").arg(file);
    return false;
  }
  QSaveFile out(file);  // written whole, then renamed over the old one
  if (!out.open(QIODevice::WriteOnly | QIODevice::Text)) {
    if (error) *error = QStringLiteral("cannot write %1: %2").arg(file, out.errorString());
    return false;
  }
  QString text = kMagic + identity + QLatin1Char('\n');
  for (const Bookmark& b : marks) {
    QString name = b.name;
    name.replace(QLatin1Char('\t'), QLatin1Char(' '))
        .replace(QLatin1Char('\n'), QLatin1Char(' '))
        .replace(QLatin1Char('\r'), QLatin1Char(' '));
    text += QStringLiteral("%1\t%2\n").arg(b.step).arg(name);
  }
  out.write(text.toUtf8());
  if (!out.commit()) {
    if (error) *error = QStringLiteral("cannot write %1: %2").arg(file, out.errorString());
    return false;
  }
  return true;
}

std::vector<Bookmark> loadBookmarks(const QString& file, const QString& identity, QString* error) {
  std::vector<Bookmark> marks;
  QFile in(file);
  if (!in.open(QIODevice::ReadOnly | QIODevice::Text)) return marks;  // none saved
  const QStringList lines = QString::fromUtf8(in.readAll()).split(QLatin1Char('\n'));
  if (lines.isEmpty() || lines[0] != kMagic + identity) {
    if (error)
      *error = lines.isEmpty() || !lines[0].startsWith(kMagic)
                   ? QStringLiteral("%1:1: not a ttvm bookmark file").arg(file)
                   : QStringLiteral("%1: bookmarks of another recording (%2), not loaded")
                         .arg(file, lines[0].mid(kMagic.size()));
    return marks;
  }
  for (qsizetype i = 1; i < lines.size(); ++i) {
    if (lines[i].isEmpty()) continue;
    const qsizetype tab = lines[i].indexOf(QLatin1Char('\t'));
    bool ok = false;
    const uint64_t step = tab > 0 ? lines[i].left(tab).toULongLong(&ok) : 0;
    if (!ok) {
      if (error && error->isEmpty())
        *error = QStringLiteral("%1:%2: expected STEP<tab>NAME").arg(file).arg(i + 1);
      continue;
    }
    marks.push_back(Bookmark{step, lines[i].mid(tab + 1)});
  }
  std::stable_sort(marks.begin(), marks.end(),
                   [](const Bookmark& a, const Bookmark& b) { return a.step < b.step; });
  return marks;
}

}  // namespace ttvm::ui
