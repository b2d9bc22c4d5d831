#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/gpu/video.hpp"

namespace fs = std::filesystem;
using vidnode::gpu::video_frames;
using vidnode::gpu::write_y4m;

namespace {

/// A fresh directory under the system's temp directory, removed at the end.
class temp_dir {
public:
  temp_dir() {
    std::random_device random;
    path_ = fs::temp_directory_path()
            / ("vidnode-y4m-test-" + std::to_string(random()));
    fs::create_directories(path_);
  }

  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }

  std::string file(const std::string& name) const {
    return (path_ / name).string();
  }

  bool empty() const {
    return fs::is_empty(path_);
  }

private:
  fs::path path_;
};

struct rgb {
  uint8_t r;
  uint8_t g;
  uint8_t b;
};

video_frames solid_video(int32_t frames, int32_t width, int32_t height,
                         rgb color, int32_t fps = 24) {
  video_frames video;
  video.frames = frames;
  video.width = width;
  video.height = height;
  video.fps = fps;
  video.rgb.resize(static_cast<size_t>(frames) * static_cast<size_t>(width)
                   * static_cast<size_t>(height) * 3);
  for (size_t i = 0; i < video.rgb.size(); i += 3) {
    video.rgb[i] = color.r;
    video.rgb[i + 1] = color.g;
    video.rgb[i + 2] = color.b;
  }
  return video;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string header_of(int32_t width, int32_t height, int32_t fps) {
  return "YUV4MPEG2 W" + std::to_string(width) + " H" + std::to_string(height)
         + " F" + std::to_string(fps) + ":1 Ip A1:1 C420jpeg\n";
}

size_t chroma_bytes(int32_t width, int32_t height) {
  return static_cast<size_t>((width + 1) / 2) * ((height + 1) / 2);
}

/// Checks that every frame of a solid-colour file holds `y`, `cb` and `cr`
/// (within one step of rounding).
void check_solid_planes(const std::string& file, const video_frames& video,
                        int y, int cb, int cr) {
  auto header = header_of(video.width, video.height, video.fps);
  auto luma = static_cast<size_t>(video.width) * video.height;
  auto chroma = chroma_bytes(video.width, video.height);
  size_t at = header.size();
  for (int32_t frame = 0; frame < video.frames; ++frame) {
    REQUIRE(file.compare(at, 6, "FRAME\n") == 0);
    at += 6;
    auto byte = [&](size_t i) {
      return static_cast<int>(static_cast<uint8_t>(file[at + i]));
    };
    for (size_t i = 0; i < luma; ++i)
      REQUIRE(std::abs(byte(i) - y) <= 1);
    for (size_t i = 0; i < chroma; ++i) {
      REQUIRE(std::abs(byte(luma + i) - cb) <= 1);
      REQUIRE(std::abs(byte(luma + chroma + i) - cr) <= 1);
    }
    at += luma + 2 * chroma;
  }
  CHECK(at == file.size());
}

} // namespace

TEST_CASE("a y4m file has the exact header and one FRAME per frame", "[y4m]") {
  temp_dir dir;
  auto path = dir.file("out.y4m");
  auto video = solid_video(3, 16, 8, {10, 20, 30}, 25);
  REQUIRE_FALSE(write_y4m(path, video));
  auto file = read_file(path);
  auto header = std::string("YUV4MPEG2 W16 H8 F25:1 Ip A1:1 C420jpeg\n");
  CHECK(file.compare(0, header.size(), header) == 0);
  CHECK(file.size() == header.size() + 3 * (6 + 16 * 8 + 2 * 8 * 4));
  CHECK_FALSE(fs::exists(path + ".partial"));
}

TEST_CASE("y4m colours use full-range BT.601", "[y4m]") {
  temp_dir dir;
  auto path = dir.file("solid.y4m");
  SECTION("white") {
    auto video = solid_video(2, 4, 4, {255, 255, 255});
    REQUIRE_FALSE(write_y4m(path, video));
    check_solid_planes(read_file(path), video, 255, 128, 128);
  }
  SECTION("black") {
    auto video = solid_video(2, 4, 4, {0, 0, 0});
    REQUIRE_FALSE(write_y4m(path, video));
    check_solid_planes(read_file(path), video, 0, 128, 128);
  }
  SECTION("red") {
    auto video = solid_video(2, 4, 4, {255, 0, 0});
    REQUIRE_FALSE(write_y4m(path, video));
    check_solid_planes(read_file(path), video, 76, 85, 255);
  }
}

TEST_CASE("y4m chroma averages the pixels of each 2x2 block", "[y4m]") {
  temp_dir dir;
  auto path = dir.file("halves.y4m");
  // Left column white, right column black: each block is half white.
  auto video = solid_video(1, 2, 2, {0, 0, 0});
  for (size_t row = 0; row < 2; ++row)
    for (size_t channel = 0; channel < 3; ++channel)
      video.rgb[row * 6 + channel] = 255;
  REQUIRE_FALSE(write_y4m(path, video));
  auto file = read_file(path);
  auto frame = file.substr(header_of(2, 2, 24).size() + 6);
  REQUIRE(frame.size() == 4 + 2);
  CHECK(static_cast<uint8_t>(frame[0]) == 255);
  CHECK(static_cast<uint8_t>(frame[1]) == 0);
  CHECK(static_cast<uint8_t>(frame[4]) == 128);
  CHECK(static_cast<uint8_t>(frame[5]) == 128);
}

TEST_CASE("y4m handles odd widths and heights", "[y4m]") {
  temp_dir dir;
  auto path = dir.file("odd.y4m");
  auto width = GENERATE(1, 3, 5, 6);
  auto height = GENERATE(1, 3, 4, 7);
  auto video = solid_video(2, width, height, {255, 0, 0}, 30);
  INFO(width << "x" << height);
  REQUIRE_FALSE(write_y4m(path, video));
  auto file = read_file(path);
  auto header = header_of(width, height, 30);
  CHECK(file.compare(0, header.size(), header) == 0);
  CHECK(file.size()
        == header.size()
             + 2
                 * (6 + static_cast<size_t>(width) * height
                    + 2 * chroma_bytes(width, height)));
  check_solid_planes(file, video, 76, 85, 255);
}

TEST_CASE("y4m rejects bad input without creating a file", "[y4m]") {
  temp_dir dir;
  auto path = dir.file("bad.y4m");
  auto video = solid_video(2, 4, 4, {0, 0, 0});
  SECTION("no frames") {
    video.frames = 0;
    video.rgb.clear();
  }
  SECTION("no width") {
    video.width = 0;
  }
  SECTION("negative height") {
    video.height = -4;
  }
  SECTION("no fps") {
    video.fps = 0;
  }
  SECTION("too few bytes") {
    video.rgb.pop_back();
  }
  SECTION("a frame too many bytes") {
    video.rgb.resize(video.rgb.size() + 4 * 4 * 3);
  }
  auto error = write_y4m(path, video);
  REQUIRE(error);
  CHECK_FALSE(error->empty());
  CHECK(dir.empty());
}

TEST_CASE("y4m names the path it cannot write", "[y4m]") {
  temp_dir dir;
  auto path = dir.file("missing-dir/out.y4m");
  auto error = write_y4m(path, solid_video(1, 2, 2, {0, 0, 0}));
  REQUIRE(error);
  CHECK_THAT(*error, Catch::Contains(path));
  CHECK(dir.empty());
}

TEST_CASE("write_video writes the extension it announces", "[y4m]") {
  temp_dir dir;
  std::string extension = vidnode::gpu::video_file_extension();
  auto path = dir.file("out." + extension);
  auto video = solid_video(2, 4, 4, {255, 255, 255});
  if (extension == "y4m") {
    REQUIRE_FALSE(vidnode::gpu::write_video(path, video));
    check_solid_planes(read_file(path), video, 255, 128, 128);
    auto error =
      vidnode::gpu::write_video(dir.file("with-audio.y4m"), video, "a.wav");
    REQUIRE(error);
    CHECK_THAT(*error, Catch::Contains("cannot mux audio"));
    CHECK_FALSE(fs::exists(dir.file("with-audio.y4m")));
  } else {
    CHECK(extension == "mp4");
    CHECK(vidnode::gpu::video_encoding_available());
  }
}

TEST_CASE("FFmpeg reads a y4m file back", "[y4m]") {
  if (!vidnode::gpu::video_encoding_available())
    return;
  temp_dir dir;
  auto path = dir.file("probe.y4m");
  REQUIRE_FALSE(write_y4m(path, solid_video(5, 7, 3, {0, 128, 255}, 12)));
  std::string error;
  auto info = vidnode::gpu::probe_video(path, error);
  INFO(error);
  REQUIRE(info);
  CHECK(info->codec == "rawvideo");
  CHECK(info->width == 7);
  CHECK(info->height == 3);
  CHECK(info->frames == 5);
  CHECK(info->fps == Approx(12));
  CHECK_FALSE(info->has_audio);
}
