#pragma once

/// @file
/// What vidctl sends a terminal beyond plain lines: bars, a line redrawn in
/// place, a full-screen view, keys read one at a time, and the terminal
/// given back however vidctl ends (normally, by an exception, or by SIGINT,
/// SIGTERM or SIGHUP through interrupts.hpp). The only file that knows
/// escape sequences (ANSI/ECMA-48 and xterm's, which every terminal
/// emulator in use understands).
///
/// Every write to the terminal made here is one write(2) under one lock,
/// which the signal thread takes too, so the sequence that gives the
/// terminal back never lands inside a half-written frame.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace vidnode::vidctl {

/// What stdout is and what it may be sent, read once from the environment.
struct terminal_traits {
  /// stdout is a terminal and TERM is set and not "dumb": lines may be
  /// redrawn and the screen addressed.
  bool interactive = false;
  /// Colors and other styles are allowed: interactive, and NO_COLOR is
  /// unset or empty (https://no-color.org).
  bool color = false;
  /// The character set of the locale (LC_ALL, else LC_CTYPE, else LANG, the
  /// first that is set and not empty) is UTF-8: bars are drawn with block
  /// characters; otherwise with ASCII.
  bool utf8 = false;
};

/// Reads terminal_traits from stdout and the environment.
terminal_traits detect_terminal();

/// A window's size in character cells.
struct window_size {
  int columns = 80;
  int rows = 24;
};

/// The size of the terminal on stdout now (TIOCGWINSZ); 80x24 when it does
/// not say.
window_size terminal_size();

/// Text styles; styled() leaves text as it is when colors are not allowed.
enum class text_style { bold, dim, red, yellow, green, cyan, inverse };

/// `text` in `style` (reset after it), or `text` unchanged without color.
std::string styled(const std::string& text, text_style style,
                   const terminal_traits& traits);

/// A bar `cells` cells wide (borders included; at least 3) filled to
/// `fraction` (clamped to 0..1): "|████▌   |" in UTF-8 (eighths of a cell),
/// "[####    ]" in ASCII; the filled part in green with color.
std::string render_bar(double fraction, int cells,
                       const terminal_traits& traits);

/// How many cells `text` takes on the screen: its UTF-8 characters, escape
/// sequences not counted. Not guaranteed for wide (CJK) characters, which
/// vidctl's own text does not contain (a prompt or error may).
size_t cells_of(const std::string& text);

/// `text` cut to at most `cells` cells, never inside an escape sequence or
/// a UTF-8 character; a cut styled text gets its style reset.
std::string fit(const std::string& text, size_t cells);

/// A duration for a live view: "0.4s", "12.3s", "4m05s", "2h13m".
std::string clock_text(std::chrono::milliseconds elapsed);

/// One line of stdout redrawn in place (a progress bar), with lines
/// printed above it. Lines longer than the window are cut, so the line
/// never wraps (a window made narrower while it is drawn may leave a
/// wrapped piece of the previous line behind). The cursor stays visible.
/// While it is open, a signal that ends vidctl first ends the line, so
/// that what the signal thread prints and the shell's prompt start on a
/// line of their own.
///
/// Thread-safety: every member may be called from any thread.
class live_line {
public:
  live_line();

  /// Ends the line (close()).
  ~live_line();

  live_line(const live_line&) = delete;
  live_line& operator=(const live_line&) = delete;

  /// Draws `line` in place of the previous one, unless it is the same.
  void show(const std::string& line);

  /// Clears the line, runs `print` (which writes whole lines to stdout or
  /// stderr, and must not call back into this line), and draws the line
  /// again below what it printed.
  void print_above(const std::function<void()>& print);

  /// Leaves the last line drawn on the screen and moves to the next line;
  /// later calls draw nothing (print_above still runs `print`).
  void close();
};

/// The whole window for a refreshing view (vidctl top): the alternate
/// screen, the cursor hidden, stdin (when it is a terminal) read key by key
/// without echo, Ctrl-Z disabled (a stopped view would leave the shell on
/// the alternate screen); Ctrl-C still sends SIGINT. All of it is given
/// back when the object goes and when SIGINT, SIGTERM or SIGHUP ends
/// vidctl. One at a time.
class full_screen {
public:
  full_screen();

  /// Gives the terminal back as it was.
  ~full_screen();

  full_screen(const full_screen&) = delete;
  full_screen& operator=(const full_screen&) = delete;

  /// Draws `lines` from the top left, each cut to the window's width; the
  /// lines past the window's height are not drawn, the rest of the window
  /// is cleared.
  void draw(const std::vector<std::string>& lines);

  /// What wait_for_input saw.
  struct input {
    /// The keys typed (bytes as read; escape sequences of arrows and the
    /// like included).
    std::string keys;
    /// The window's size changed (SIGWINCH).
    bool resized = false;
  };

  /// Waits up to `timeout` for keys or a change of the window's size.
  input wait_for_input(std::chrono::milliseconds timeout);

private:
  bool keyboard_ = false;
};

} // namespace vidnode::vidctl
