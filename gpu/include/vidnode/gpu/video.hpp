#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vidnode::gpu {

/// Decoded frames of one video: `frames` RGB images of `width` x `height`,
/// 8 bits per channel, row-major, frame after frame (size frames * height *
/// width * 3).
struct video_frames {
  int32_t frames = 0;
  int32_t width = 0;
  int32_t height = 0;
  int32_t fps = 0;
  std::vector<uint8_t> rgb;
};

/// Whether this build can encode MP4 files (FFmpeg's libraries were found).
bool video_encoding_available() noexcept;

/// Writes `video` to `path` as MP4 (H.264, yuv420p, `fps` frames per
/// second). With `audio_path` (any file FFmpeg can decode), its first audio
/// stream is added as AAC (48 kHz stereo), cut or padded with silence to the
/// video's length. Blocking; safe to call from several threads at once.
/// Returns nothing on success, else what went wrong.
std::optional<std::string> write_mp4(const std::string& path,
                                     const video_frames& video,
                                     const std::string& audio_path = {});

/// Checks that write_video could add the file `path` as an audio track:
/// FFmpeg opens it, finds an audio stream and a decoder for it. FFmpeg
/// reads only as much as it needs to identify the streams (at most a few
/// MB): a file that is corrupt further on passes. Returns nothing if usable,
/// else why not ("it is empty (0 bytes)", "not audio FFmpeg can decode
/// (CAUSE)"; without FFmpeg always the reason that audio cannot be muxed).
/// Blocking; safe to call from several threads at once.
std::optional<std::string> probe_audio(const std::string& path);

/// Writes `video` to `path` as uncompressed YUV4MPEG2 (4:2:0, full-range
/// BT.601 "C420jpeg", each chroma sample the mean of the up to 2x2 pixels it
/// covers; any width and height). Needs no FFmpeg; ffmpeg, mpv and VLC play
/// the file. It is written beside `path` and renamed into place, so `path`
/// never holds half a video. Blocking; safe to call from several threads at
/// once. Returns nothing on success, else what went wrong.
std::optional<std::string> write_y4m(const std::string& path,
                                     const video_frames& video);

/// The extension (without the dot) of the files write_video writes: "mp4"
/// with FFmpeg, else "y4m".
const char* video_file_extension() noexcept;

/// Writes `video` to `path` in the best format this build has: write_mp4
/// with FFmpeg, else write_y4m, which cannot add audio (a non-empty
/// `audio_path` is then an error, and nothing is written). Name the file
/// with video_file_extension().
std::optional<std::string> write_video(const std::string& path,
                                       const video_frames& video,
                                       const std::string& audio_path = {});

/// What a video file holds, as read back by FFmpeg.
struct video_file_info {
  std::string codec;
  int32_t width = 0;
  int32_t height = 0;
  int32_t frames = 0;
  double fps = 0;
  bool has_audio = false;
  /// Length of the audio stream in seconds (0 without audio).
  double audio_seconds = 0;
};

/// Reads `path`: its streams, and the number of packets of its video stream
/// (one per frame for H.264). Nothing if the file cannot be read; `error`
/// says why.
std::optional<video_file_info> probe_video(const std::string& path,
                                           std::string& error);

} // namespace vidnode::gpu
