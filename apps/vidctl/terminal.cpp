#include "vidctl/terminal.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <mutex>

#include "vidctl/interrupts.hpp"

namespace vidnode::vidctl {

namespace {

// -- escape sequences ---------------------------------------------------------

constexpr const char* erase_to_end_of_line = "\x1b[K";
constexpr const char* erase_below = "\x1b[J";
constexpr const char* cursor_home = "\x1b[H";
constexpr const char* enter_full_screen = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
constexpr const char* leave_full_screen = "\x1b[?25h\x1b[?1049l";
constexpr const char* reset_style = "\x1b[0m";

// -- the terminal's state, under one lock
// ---------------------------------------

/// Held for every write to the terminal made here, and taken for good by the
/// signal thread before it gives the terminal back.
std::mutex screen_mutex;

/// The live line (one at a time).
bool line_drawn = false;
bool line_closed = false;
std::string line_shown;

/// The full screen (one at a time).
bool screen_active = false;
bool screen_keyboard = false;
termios screen_saved_modes{};
std::string screen_frame;

/// Written to by the SIGWINCH handler, read by full_screen::wait_for_input.
int resize_pipe[2] = {-1, -1};
struct sigaction resize_previous {};

/// Writes every byte of `bytes` to stdout (EINTR and short writes retried;
/// other errors ignored: there is no one left to tell).
void write_out(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    auto n = ::write(STDOUT_FILENO, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    done += static_cast<size_t>(n);
  }
}

/// Gives the full screen back; `screen_mutex` is held.
void leave_screen_locked() {
  if (!screen_active)
    return;
  screen_active = false;
  write_out(leave_full_screen);
  if (screen_keyboard)
    ::tcsetattr(STDIN_FILENO, TCSANOW, &screen_saved_modes);
}

void note_resize(int) {
  auto saved = errno;
  if (resize_pipe[1] >= 0) [[maybe_unused]]
    auto ignored = ::write(resize_pipe[1], "r", 1);
  errno = saved;
}

bool is_utf8_locale() {
  for (auto name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    auto value = std::getenv(name);
    if (value == nullptr || *value == '\0')
      continue;
    std::string charset{value};
    std::transform(charset.begin(), charset.end(), charset.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    return charset.find("utf-8") != std::string::npos
           || charset.find("utf8") != std::string::npos;
  }
  return false;
}

/// The length of the escape sequence at `text[i]` (CSI: ESC [ ... final
/// byte), or 0 if there is none.
size_t escape_length(const std::string& text, size_t i) {
  if (text[i] != '\x1b' || i + 1 >= text.size() || text[i + 1] != '[')
    return 0;
  auto j = i + 2;
  while (j < text.size() && (text[j] < 0x40 || text[j] > 0x7e))
    ++j;
  return std::min(j + 1, text.size()) - i;
}

bool continues_character(char c) {
  return (static_cast<unsigned char>(c) & 0xc0) == 0x80;
}

} // namespace

terminal_traits detect_terminal() {
  terminal_traits traits;
  auto term = std::getenv("TERM");
  traits.interactive = ::isatty(STDOUT_FILENO) == 1 && term != nullptr
                       && *term != '\0' && std::string{term} != "dumb";
  auto no_color = std::getenv("NO_COLOR");
  traits.color =
    traits.interactive && (no_color == nullptr || *no_color == '\0');
  traits.utf8 = is_utf8_locale();
  return traits;
}

window_size terminal_size() {
  window_size size;
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0
      && ws.ws_row > 0) {
    size.columns = ws.ws_col;
    size.rows = ws.ws_row;
  }
  return size;
}

std::string styled(const std::string& text, text_style style,
                   const terminal_traits& traits) {
  if (!traits.color || text.empty())
    return text;
  const char* code = "0";
  switch (style) {
    case text_style::bold:
      code = "1";
      break;
    case text_style::dim:
      code = "2";
      break;
    case text_style::red:
      code = "31";
      break;
    case text_style::yellow:
      code = "33";
      break;
    case text_style::green:
      code = "32";
      break;
    case text_style::cyan:
      code = "36";
      break;
    case text_style::inverse:
      code = "7";
      break;
  }
  return std::string{"\x1b["} + code + "m" + text + reset_style;
}

std::string render_bar(double fraction, int cells,
                       const terminal_traits& traits) {
  auto inner = std::max(cells, 3) - 2;
  fraction = std::clamp(fraction, 0.0, 1.0);
  std::string filled;
  int used = 0;
  if (traits.utf8) {
    static const char* eighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    auto parts = static_cast<int>(fraction * inner * 8 + 0.5);
    for (; used < parts / 8; ++used)
      filled += "█";
    if (parts % 8 != 0 && used < inner) {
      filled += eighths[parts % 8];
      ++used;
    }
  } else {
    auto full = static_cast<int>(fraction * inner + 0.5);
    for (; used < full; ++used)
      filled += '#';
  }
  auto left = traits.utf8 ? "|" : "[";
  auto right = traits.utf8 ? "|" : "]";
  return left + styled(filled, text_style::green, traits)
         + std::string(static_cast<size_t>(inner - used), ' ') + right;
}

size_t cells_of(const std::string& text) {
  size_t cells = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (auto n = escape_length(text, i)) {
      i += n - 1;
      continue;
    }
    if (!continues_character(text[i]))
      ++cells;
  }
  return cells;
}

std::string fit(const std::string& text, size_t cells) {
  std::string result;
  size_t used = 0;
  auto styled_text = false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (auto n = escape_length(text, i)) {
      result.append(text, i, n);
      styled_text = true;
      i += n - 1;
      continue;
    }
    if (!continues_character(text[i])) {
      if (used == cells)
        return styled_text ? result + reset_style : result;
      ++used;
    }
    result += text[i];
  }
  return result;
}

std::string clock_text(std::chrono::milliseconds elapsed) {
  auto ms = std::max<long long>(elapsed.count(), 0);
  char text[32];
  if (ms < 60'000)
    std::snprintf(text, sizeof text, "%lld.%llds", ms / 1000, ms % 1000 / 100);
  else if (ms < 3'600'000)
    std::snprintf(text, sizeof text, "%lldm%02llds", ms / 60'000,
                  ms % 60'000 / 1000);
  else
    std::snprintf(text, sizeof text, "%lldh%02lldm", ms / 3'600'000,
                  ms % 3'600'000 / 60'000);
  return text;
}

// -- live_line ---------------------------------------------------------------

live_line::live_line() {
  {
    std::lock_guard<std::mutex> guard{screen_mutex};
    line_drawn = false;
    line_closed = false;
    line_shown.clear();
  }
  restore_terminal_if_interrupted([] {
    // Never given back: the process ends by the signal right after.
    screen_mutex.lock();
    if (line_drawn && !line_closed)
      write_out("\n");
    line_closed = true;
  });
}

live_line::~live_line() {
  close();
}

void live_line::show(const std::string& line) {
  std::lock_guard<std::mutex> guard{screen_mutex};
  if (line_closed)
    return;
  auto text =
    fit(line, static_cast<size_t>(std::max(terminal_size().columns - 1, 1)));
  if (line_drawn && text == line_shown)
    return;
  write_out("\r" + text + erase_to_end_of_line);
  line_drawn = true;
  line_shown = std::move(text);
}

void live_line::print_above(const std::function<void()>& print) {
  std::lock_guard<std::mutex> guard{screen_mutex};
  auto redraw = line_drawn && !line_closed;
  if (redraw)
    write_out(std::string{"\r"} + erase_to_end_of_line);
  print();
  std::cout.flush();
  std::cerr.flush();
  if (redraw)
    write_out("\r" + line_shown + erase_to_end_of_line);
}

void live_line::close() {
  {
    std::lock_guard<std::mutex> guard{screen_mutex};
    if (line_closed)
      return;
    if (line_drawn)
      write_out("\n");
    line_closed = true;
  }
  restore_terminal_if_interrupted(nullptr);
}

// -- full_screen -------------------------------------------------------------

full_screen::full_screen() {
  // Registered first (it does nothing until the screen is active), and
  // never under screen_mutex: the signal thread takes its own lock, then
  // screen_mutex.
  restore_terminal_if_interrupted([] {
    screen_mutex.lock();
    leave_screen_locked();
  });
  {
    std::lock_guard<std::mutex> guard{screen_mutex};
    screen_keyboard = keyboard_ =
      ::isatty(STDIN_FILENO) == 1
      && ::tcgetattr(STDIN_FILENO, &screen_saved_modes) == 0;
    if (keyboard_) {
      auto modes = screen_saved_modes;
      modes.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
      modes.c_cc[VMIN] = 1;
      modes.c_cc[VTIME] = 0;
      modes.c_cc[VSUSP] = _POSIX_VDISABLE;
      ::tcsetattr(STDIN_FILENO, TCSANOW, &modes);
    }
    if (::pipe2(resize_pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
      struct sigaction action {};
      action.sa_handler = note_resize;
      sigemptyset(&action.sa_mask);
      action.sa_flags = SA_RESTART;
      ::sigaction(SIGWINCH, &action, &resize_previous);
    }
    screen_frame.clear();
    screen_active = true;
    write_out(enter_full_screen);
  }
}

full_screen::~full_screen() {
  {
    std::lock_guard<std::mutex> guard{screen_mutex};
    leave_screen_locked();
  }
  restore_terminal_if_interrupted(nullptr);
  if (resize_pipe[0] >= 0) {
    ::sigaction(SIGWINCH, &resize_previous, nullptr);
    ::close(resize_pipe[0]);
    ::close(resize_pipe[1]);
    resize_pipe[0] = resize_pipe[1] = -1;
  }
}

void full_screen::draw(const std::vector<std::string>& lines) {
  auto size = terminal_size();
  // The last column stays empty: a character there leaves the cursor waiting
  // to wrap, and erasing the rest of the line would then erase it.
  auto width = static_cast<size_t>(std::max(size.columns - 1, 1));
  auto count = std::min(lines.size(), static_cast<size_t>(size.rows));
  std::string frame = cursor_home;
  for (size_t i = 0; i < count; ++i) {
    frame += fit(lines[i], width) + erase_to_end_of_line;
    // No line feed after the last row: it would scroll the screen.
    if (i + 1 < count)
      frame += "\r\n";
  }
  frame += erase_below;
  std::lock_guard<std::mutex> guard{screen_mutex};
  if (!screen_active || frame == screen_frame)
    return;
  write_out(frame);
  screen_frame = std::move(frame);
}

full_screen::input
full_screen::wait_for_input(std::chrono::milliseconds timeout) {
  input seen;
  pollfd fds[2] = {{resize_pipe[0], POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
  auto count = keyboard_ ? 2 : 1;
  if (::poll(fds, static_cast<nfds_t>(count), static_cast<int>(timeout.count()))
      <= 0)
    return seen;
  char buffer[64];
  if (fds[0].revents & POLLIN) {
    while (::read(resize_pipe[0], buffer, sizeof buffer) > 0) {
    }
    seen.resized = true;
    // A new size shows on the next draw, which must not be skipped as
    // unchanged.
    std::lock_guard<std::mutex> guard{screen_mutex};
    screen_frame.clear();
  }
  if (keyboard_ && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
    auto n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n > 0)
      seen.keys.assign(buffer, static_cast<size_t>(n));
    else if (n == 0 || (errno != EINTR && errno != EAGAIN))
      keyboard_ = false;
  }
  return seen;
}

} // namespace vidnode::vidctl
