#include "vidnode/gpu/video.hpp"

// Built when FFmpeg's libraries were not found (e.g. the GPU machine): the
// node still runs, and writes its videos as uncompressed Y4M without audio.

namespace vidnode::gpu {

namespace {

constexpr const char* no_audio =
  "this vidnode was built without FFmpeg: it cannot mux audio; leave the "
  "audio out or use a node built with FFmpeg";

} // namespace

bool video_encoding_available() noexcept {
  return false;
}

std::optional<std::string> write_mp4(const std::string&, const video_frames&,
                                     const std::string&) {
  return "this vidnode was built without FFmpeg: it cannot write MP4 files";
}

const char* video_file_extension() noexcept {
  return "y4m";
}

std::optional<std::string> write_video(const std::string& path,
                                       const video_frames& video,
                                       const std::string& audio_path) {
  if (!audio_path.empty())
    return no_audio;
  return write_y4m(path, video);
}

std::optional<std::string> probe_audio(const std::string&) {
  return no_audio;
}

std::optional<video_file_info> probe_video(const std::string&,
                                           std::string& error) {
  error = "this vidnode was built without FFmpeg: it cannot read videos";
  return std::nullopt;
}

} // namespace vidnode::gpu
