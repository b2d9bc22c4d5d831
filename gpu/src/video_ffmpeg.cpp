#include "vidnode/gpu/video.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <memory>
#include <mutex>

namespace vidnode::gpu {

namespace {

/// FFmpeg logs to stderr by default (x264 prints a dozen lines per video):
/// only errors are kept, and those reach the job as its error anyway.
void quiet_ffmpeg_logs() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_ERROR); });
}

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

struct codec_context_deleter {
  void operator()(AVCodecContext* x) const {
    avcodec_free_context(&x);
  }
};

struct frame_deleter {
  void operator()(AVFrame* x) const {
    av_frame_free(&x);
  }
};

struct packet_deleter {
  void operator()(AVPacket* x) const {
    av_packet_free(&x);
  }
};

struct sws_deleter {
  void operator()(SwsContext* x) const {
    sws_freeContext(x);
  }
};

/// An output file being written; closes and frees everything it opened.
struct output_file {
  AVFormatContext* format = nullptr;
  bool opened = false;

  ~output_file() {
    if (format == nullptr)
      return;
    if (opened)
      avio_closep(&format->pb);
    avformat_free_context(format);
  }
};

/// An input file being read.
struct input_file {
  AVFormatContext* format = nullptr;

  ~input_file() {
    if (format != nullptr)
      avformat_close_input(&format);
  }
};

/// Sends `frame` (null: flush) and writes every packet that comes out.
std::optional<std::string> encode(AVCodecContext* codec, AVStream* stream,
                                  AVFormatContext* format, AVFrame* frame,
                                  AVPacket* packet) {
  auto rc = avcodec_send_frame(codec, frame);
  if (rc < 0)
    return "encoding a frame: " + av_error(rc);
  for (;;) {
    rc = avcodec_receive_packet(codec, packet);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
      return std::nullopt;
    if (rc < 0)
      return "encoding a frame: " + av_error(rc);
    av_packet_rescale_ts(packet, codec->time_base, stream->time_base);
    packet->stream_index = stream->index;
    rc = av_interleaved_write_frame(format, packet);
    if (rc < 0)
      return "writing a packet: " + av_error(rc);
  }
}

} // namespace

bool video_encoding_available() noexcept {
  return true;
}

std::optional<std::string> write_mp4(const std::string& path,
                                     const video_frames& video) {
  if (video.frames <= 0 || video.width <= 0 || video.height <= 0
      || video.fps <= 0 || video.width % 2 != 0 || video.height % 2 != 0)
    return "invalid video shape";
  quiet_ffmpeg_logs();
  auto frame_bytes = static_cast<size_t>(video.width) * video.height * 3;
  if (video.rgb.size() != frame_bytes * video.frames)
    return "frame data does not match the video shape";
  auto codec_def = avcodec_find_encoder(AV_CODEC_ID_H264);
  if (codec_def == nullptr)
    return "this FFmpeg has no H.264 encoder";
  output_file out;
  auto rc =
    avformat_alloc_output_context2(&out.format, nullptr, "mp4", path.c_str());
  if (rc < 0 || out.format == nullptr)
    return "creating " + path + ": " + av_error(rc);
  auto stream = avformat_new_stream(out.format, nullptr);
  if (stream == nullptr)
    return "creating the video stream";
  std::unique_ptr<AVCodecContext, codec_context_deleter> codec{
    avcodec_alloc_context3(codec_def)};
  codec->width = video.width;
  codec->height = video.height;
  codec->time_base = AVRational{1, video.fps};
  codec->framerate = AVRational{video.fps, 1};
  codec->pix_fmt = AV_PIX_FMT_YUV420P;
  codec->gop_size = video.fps;
  if (out.format->oformat->flags & AVFMT_GLOBALHEADER)
    codec->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  av_opt_set(codec->priv_data, "preset", "veryfast", 0);
  av_opt_set(codec->priv_data, "crf", "20", 0);
  // One thread per encoder: the node encodes several videos at once.
  codec->thread_count = 1;
  rc = avcodec_open2(codec.get(), codec_def, nullptr);
  if (rc < 0)
    return "opening the H.264 encoder: " + av_error(rc);
  avcodec_parameters_from_context(stream->codecpar, codec.get());
  stream->time_base = codec->time_base;
  stream->avg_frame_rate = codec->framerate;
  rc = avio_open(&out.format->pb, path.c_str(), AVIO_FLAG_WRITE);
  if (rc < 0)
    return "opening " + path + ": " + av_error(rc);
  out.opened = true;
  rc = avformat_write_header(out.format, nullptr);
  if (rc < 0)
    return "writing the MP4 header: " + av_error(rc);
  std::unique_ptr<SwsContext, sws_deleter> convert{sws_getContext(
    video.width, video.height, AV_PIX_FMT_RGB24, video.width, video.height,
    AV_PIX_FMT_YUV420P, SWS_BILINEAR, nullptr, nullptr, nullptr)};
  std::unique_ptr<AVFrame, frame_deleter> frame{av_frame_alloc()};
  std::unique_ptr<AVPacket, packet_deleter> packet{av_packet_alloc()};
  if (!convert || !frame || !packet)
    return "out of memory preparing the encoder";
  frame->format = AV_PIX_FMT_YUV420P;
  frame->width = video.width;
  frame->height = video.height;
  rc = av_frame_get_buffer(frame.get(), 0);
  if (rc < 0)
    return "allocating a frame: " + av_error(rc);
  for (int32_t i = 0; i < video.frames; ++i) {
    rc = av_frame_make_writable(frame.get());
    if (rc < 0)
      return "preparing a frame: " + av_error(rc);
    const uint8_t* src[1] = {video.rgb.data() + frame_bytes * i};
    int src_stride[1] = {video.width * 3};
    sws_scale(convert.get(), src, src_stride, 0, video.height, frame->data,
              frame->linesize);
    frame->pts = i;
    if (auto err =
          encode(codec.get(), stream, out.format, frame.get(), packet.get()))
      return err;
  }
  if (auto err = encode(codec.get(), stream, out.format, nullptr, packet.get()))
    return err;
  rc = av_write_trailer(out.format);
  if (rc < 0)
    return "writing the MP4 trailer: " + av_error(rc);
  return std::nullopt;
}

std::optional<video_file_info> probe_video(const std::string& path,
                                           std::string& error) {
  quiet_ffmpeg_logs();
  input_file in;
  auto rc = avformat_open_input(&in.format, path.c_str(), nullptr, nullptr);
  if (rc < 0) {
    error = "opening " + path + ": " + av_error(rc);
    return std::nullopt;
  }
  rc = avformat_find_stream_info(in.format, nullptr);
  if (rc < 0) {
    error = "reading " + path + ": " + av_error(rc);
    return std::nullopt;
  }
  video_file_info info;
  int video_index = -1;
  for (unsigned i = 0; i < in.format->nb_streams; ++i) {
    auto par = in.format->streams[i]->codecpar;
    if (par->codec_type == AVMEDIA_TYPE_AUDIO)
      info.has_audio = true;
    if (par->codec_type == AVMEDIA_TYPE_VIDEO && video_index < 0)
      video_index = static_cast<int>(i);
  }
  if (video_index < 0) {
    error = path + " has no video stream";
    return std::nullopt;
  }
  auto stream = in.format->streams[video_index];
  info.codec = avcodec_get_name(stream->codecpar->codec_id);
  info.width = stream->codecpar->width;
  info.height = stream->codecpar->height;
  info.fps = av_q2d(stream->avg_frame_rate);
  // Count the frames by reading every packet of the video stream.
  std::unique_ptr<AVPacket, packet_deleter> packet{av_packet_alloc()};
  while (av_read_frame(in.format, packet.get()) >= 0) {
    if (packet->stream_index == video_index)
      ++info.frames;
    av_packet_unref(packet.get());
  }
  return info;
}

} // namespace vidnode::gpu
