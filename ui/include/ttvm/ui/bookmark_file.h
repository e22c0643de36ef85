// Bookmarks kept beside the trace: TRACE.bookmarks (for demo.ttvm,
// demo.ttvm.bookmarks), so they come back when the trace is opened again,
// on any machine the two files are copied to together.
//
// The file is UTF-8 text: a first line "ttvm-bookmarks 1 IDENTITY", then
// one bookmark a line, "STEP<TAB>NAME" in step order (tabs and line breaks
// in a name are written as spaces). IDENTITY is the trace's (its 128-bit
// trace id, or its recording time for a 1.0 trace without one): a file
// left by another recording at the same path is not this trace's, and is
// ignored, not applied.
#pragma once

#include <QString>
#include <vector>

#include "ttvm/formats/trace_types.h"
#include "ttvm/ui/stop_list_model.h"

namespace ttvm::ui {

// "id 0123…cdef" from the trace id, or "created NS" when it has none.
QString traceIdentity(const TraceHeader& header);
// TRACE.bookmarks.
QString bookmarkFilePath(const QString& tracePath);

// Writes `marks` (replacing the file; none: removes it). False with `error`
// ("cannot write FILE: why") when it cannot.
bool saveBookmarks(const QString& file, const QString& identity, const std::vector<Bookmark>& marks,
                   QString* error);
// The bookmarks of `file` when its identity is `identity`; none when the
// file is missing or another trace's. A line that does not parse is
// skipped and named in `error` ("FILE:LINE: ..."), as is another trace's
// file.
std::vector<Bookmark> loadBookmarks(const QString& file, const QString& identity, QString* error);

}  // namespace ttvm::ui
