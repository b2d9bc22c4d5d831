#include "vidnode/gpu/video.hpp"

// Built when FFmpeg's libraries were not found (e.g. the GPU machine): the
// node still runs; jobs that produce video report that it cannot encode.

namespace vidnode::gpu {

bool video_encoding_available() noexcept {
  return false;
}

std::optional<std::string> write_mp4(const std::string&, const video_frames&,
                                     const std::string&) {
  return "this vidnode was built without FFmpeg: it cannot write MP4 files";
}

std::optional<video_file_info> probe_video(const std::string&,
                                           std::string& error) {
  error = "this vidnode was built without FFmpeg: it cannot read videos";
  return std::nullopt;
}

} // namespace vidnode::gpu
