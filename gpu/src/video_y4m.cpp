#include "vidnode/gpu/video.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

namespace vidnode::gpu {

namespace {

struct file_closer {
  void operator()(std::FILE* f) const {
    std::fclose(f);
  }
};

uint8_t to_byte(double value) {
  return static_cast<uint8_t>(std::clamp(std::lround(value), 0L, 255L));
}

double luma(const uint8_t* rgb) {
  return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
}

double blue_difference(const uint8_t* rgb) {
  return 128.0 - 0.168736 * rgb[0] - 0.331264 * rgb[1] + 0.5 * rgb[2];
}

double red_difference(const uint8_t* rgb) {
  return 128.0 + 0.5 * rgb[0] - 0.418688 * rgb[1] - 0.081312 * rgb[2];
}

/// Converts one RGB frame into `planes`: Y (width x height), then Cb and Cr
/// ((width+1)/2 x (height+1)/2 each).
void rgb_to_yuv420(const uint8_t* rgb, size_t width, size_t height,
                   uint8_t* planes) {
  auto chroma_width = (width + 1) / 2;
  auto chroma_height = (height + 1) / 2;
  auto y_plane = planes;
  auto cb_plane = y_plane + width * height;
  auto cr_plane = cb_plane + chroma_width * chroma_height;
  for (size_t i = 0; i < width * height; ++i)
    y_plane[i] = to_byte(luma(rgb + i * 3));
  for (size_t cy = 0; cy < chroma_height; ++cy) {
    for (size_t cx = 0; cx < chroma_width; ++cx) {
      double cb = 0;
      double cr = 0;
      int pixels = 0;
      for (auto y = cy * 2; y < std::min(cy * 2 + 2, height); ++y) {
        for (auto x = cx * 2; x < std::min(cx * 2 + 2, width); ++x) {
          auto pixel = rgb + (y * width + x) * 3;
          cb += blue_difference(pixel);
          cr += red_difference(pixel);
          ++pixels;
        }
      }
      cb_plane[cy * chroma_width + cx] = to_byte(cb / pixels);
      cr_plane[cy * chroma_width + cx] = to_byte(cr / pixels);
    }
  }
}

std::string io_error(const std::string& path, int code) {
  return "writing " + path + ": " + std::strerror(code != 0 ? code : EIO);
}

} // namespace

std::optional<std::string> write_y4m(const std::string& path,
                                     const video_frames& video) {
  if (video.frames <= 0 || video.width <= 0 || video.height <= 0
      || video.fps <= 0)
    return "invalid video shape";
  auto width = static_cast<size_t>(video.width);
  auto height = static_cast<size_t>(video.height);
  auto frame_bytes = width * height * 3;
  if (video.rgb.size() % frame_bytes != 0
      || video.rgb.size() / frame_bytes != static_cast<size_t>(video.frames))
    return "frame data does not match the video shape";
  auto chroma_bytes = ((width + 1) / 2) * ((height + 1) / 2);
  std::vector<uint8_t> planes(width * height + 2 * chroma_bytes);

  auto partial = path + ".partial";
  std::unique_ptr<std::FILE, file_closer> file{
    std::fopen(partial.c_str(), "wb")};
  if (!file)
    return io_error(path, errno);
  auto header = "YUV4MPEG2 W" + std::to_string(video.width) + " H"
                + std::to_string(video.height) + " F"
                + std::to_string(video.fps) + ":1 Ip A1:1 C420jpeg\n";
  static constexpr char frame_marker[] = "FRAME\n";
  auto failed = [&](int code) {
    file.reset();
    std::remove(partial.c_str());
    return io_error(path, code);
  };
  if (std::fwrite(header.data(), 1, header.size(), file.get()) != header.size())
    return failed(errno);
  for (size_t i = 0; i < static_cast<size_t>(video.frames); ++i) {
    rgb_to_yuv420(video.rgb.data() + frame_bytes * i, width, height,
                  planes.data());
    if (std::fwrite(frame_marker, 1, sizeof(frame_marker) - 1, file.get())
          != sizeof(frame_marker) - 1
        || std::fwrite(planes.data(), 1, planes.size(), file.get())
             != planes.size())
      return failed(errno);
  }
  if (std::fclose(file.release()) != 0)
    return failed(errno);
  if (std::rename(partial.c_str(), path.c_str()) != 0)
    return failed(errno);
  return std::nullopt;
}

} // namespace vidnode::gpu
