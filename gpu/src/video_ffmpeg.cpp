#include "vidnode/gpu/video.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
}

#include <filesystem>
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

using codec_context_ptr =
  std::unique_ptr<AVCodecContext, codec_context_deleter>;

/// Opens `path` as `in`, finds its best audio stream (`index`) and opens a
/// decoder for it. FFmpeg may open only local files for it: a playlist in
/// `path` cannot make it fetch URLs. Returns nothing on success, else why
/// not.
std::optional<std::string> open_audio_input(const std::string& path,
                                            input_file& in, int& index,
                                            codec_context_ptr& decoder) {
  auto not_audio = [](const std::string& cause) {
    return "not audio FFmpeg can decode (" + cause + ")";
  };
  AVDictionary* options = nullptr;
  av_dict_set(&options, "protocol_whitelist", "file", 0);
  auto rc = avformat_open_input(&in.format, path.c_str(), nullptr, &options);
  av_dict_free(&options);
  if (rc < 0)
    return not_audio(av_error(rc));
  rc = avformat_find_stream_info(in.format, nullptr);
  if (rc < 0)
    return not_audio(av_error(rc));
  const AVCodec* decoder_def = nullptr;
  index =
    av_find_best_stream(in.format, AVMEDIA_TYPE_AUDIO, -1, -1, &decoder_def, 0);
  if (index == AVERROR_DECODER_NOT_FOUND)
    return not_audio("this FFmpeg has no decoder for its audio stream");
  if (index < 0 || decoder_def == nullptr)
    return not_audio(std::string{"no audio stream in it, read as "}
                     + in.format->iformat->name);
  decoder.reset(avcodec_alloc_context3(decoder_def));
  if (!decoder)
    return "out of memory opening its decoder";
  rc = avcodec_parameters_to_context(decoder.get(),
                                     in.format->streams[index]->codecpar);
  if (rc >= 0)
    rc = avcodec_open2(decoder.get(), decoder_def, nullptr);
  if (rc < 0)
    return not_audio("its decoder fails: " + av_error(rc));
  return std::nullopt;
}

struct swr_deleter {
  void operator()(SwrContext* x) const {
    swr_free(&x);
  }
};

struct fifo_deleter {
  void operator()(AVAudioFifo* x) const {
    av_audio_fifo_free(x);
  }
};

/// An audio file decoded, resampled and encoded as AAC into an output
/// file, cut or padded to a given number of samples.
class audio_track {
public:
  static constexpr int sample_rate = 48000;

  /// Opens `path` and adds an AAC stream to `out` (before its header).
  std::optional<std::string> open(const std::string& path, AVFormatContext* out,
                                  int64_t samples) {
    wanted_ = samples;
    if (auto err = open_audio_input(path, in_, index_, decoder_))
      return "audio: " + *err;
    auto encoder_def = avcodec_find_encoder(AV_CODEC_ID_AAC);
    if (encoder_def == nullptr)
      return "this FFmpeg has no AAC encoder";
    encoder_.reset(avcodec_alloc_context3(encoder_def));
    encoder_->sample_fmt = AV_SAMPLE_FMT_FLTP;
    encoder_->sample_rate = sample_rate;
    av_channel_layout_default(&encoder_->ch_layout, 2);
    encoder_->bit_rate = 128000;
    encoder_->time_base = AVRational{1, sample_rate};
    if (out->oformat->flags & AVFMT_GLOBALHEADER)
      encoder_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    auto rc = avcodec_open2(encoder_.get(), encoder_def, nullptr);
    if (rc < 0)
      return "opening the AAC encoder: " + av_error(rc);
    stream_ = avformat_new_stream(out, nullptr);
    if (stream_ == nullptr)
      return "creating the audio stream";
    avcodec_parameters_from_context(stream_->codecpar, encoder_.get());
    stream_->time_base = encoder_->time_base;
    SwrContext* swr = nullptr;
    rc = swr_alloc_set_opts2(&swr, &encoder_->ch_layout, AV_SAMPLE_FMT_FLTP,
                             sample_rate, &decoder_->ch_layout,
                             decoder_->sample_fmt, decoder_->sample_rate, 0,
                             nullptr);
    resampler_.reset(swr);
    if (rc < 0 || swr_init(swr) < 0)
      return "audio: cannot convert its samples";
    fifo_.reset(av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, 2, 1));
    return std::nullopt;
  }

  /// Decodes, resamples and encodes the track (after the output's header).
  std::optional<std::string> write(AVFormatContext* out, AVPacket* packet) {
    std::unique_ptr<AVFrame, frame_deleter> decoded{av_frame_alloc()};
    std::unique_ptr<AVPacket, packet_deleter> input{av_packet_alloc()};
    while (av_audio_fifo_size(fifo_.get()) < wanted_
           && av_read_frame(in_.format, input.get()) >= 0) {
      if (input->stream_index == index_
          && avcodec_send_packet(decoder_.get(), input.get()) >= 0) {
        while (avcodec_receive_frame(decoder_.get(), decoded.get()) >= 0) {
          if (auto err = resample(decoded.get()))
            return err;
        }
      }
      av_packet_unref(input.get());
    }
    if (auto err = resample(nullptr))
      return err;
    // Silence makes up for a track shorter than the video.
    auto missing = wanted_ - av_audio_fifo_size(fifo_.get());
    if (missing > 0) {
      std::vector<float> silence(static_cast<size_t>(missing), 0.0f);
      void* planes[2] = {silence.data(), silence.data()};
      av_audio_fifo_write(fifo_.get(), planes, static_cast<int>(missing));
    }
    std::unique_ptr<AVFrame, frame_deleter> frame{av_frame_alloc()};
    int64_t written = 0;
    while (written < wanted_) {
      auto n = static_cast<int>(
        std::min<int64_t>(encoder_->frame_size, wanted_ - written));
      av_frame_unref(frame.get());
      frame->nb_samples = n;
      frame->format = AV_SAMPLE_FMT_FLTP;
      frame->sample_rate = sample_rate;
      av_channel_layout_copy(&frame->ch_layout, &encoder_->ch_layout);
      if (av_frame_get_buffer(frame.get(), 0) < 0)
        return "allocating an audio frame";
      av_audio_fifo_read(fifo_.get(), reinterpret_cast<void**>(frame->data), n);
      frame->pts = written;
      written += n;
      if (auto err = encode(encoder_.get(), stream_, out, frame.get(), packet))
        return err;
    }
    return encode(encoder_.get(), stream_, out, nullptr, packet);
  }

private:
  /// Converts `frame` (null: what the resampler still holds) into the FIFO.
  std::optional<std::string> resample(const AVFrame* frame) {
    auto in_samples = frame ? frame->nb_samples : 0;
    auto capacity = swr_get_out_samples(resampler_.get(), in_samples);
    if (capacity <= 0)
      return std::nullopt;
    uint8_t** planes = nullptr;
    if (av_samples_alloc_array_and_samples(&planes, nullptr, 2, capacity,
                                           AV_SAMPLE_FMT_FLTP, 0)
        < 0)
      return "allocating audio samples";
    auto converted = swr_convert(
      resampler_.get(), planes, capacity,
      frame ? const_cast<const uint8_t**>(frame->extended_data) : nullptr,
      in_samples);
    if (converted > 0)
      av_audio_fifo_write(fifo_.get(), reinterpret_cast<void**>(planes),
                          converted);
    av_freep(&planes[0]);
    av_freep(&planes);
    if (converted < 0)
      return "audio: converting samples: " + av_error(converted);
    return std::nullopt;
  }

  input_file in_;
  int index_ = -1;
  int64_t wanted_ = 0;
  codec_context_ptr decoder_;
  codec_context_ptr encoder_;
  std::unique_ptr<SwrContext, swr_deleter> resampler_;
  std::unique_ptr<AVAudioFifo, fifo_deleter> fifo_;
  AVStream* stream_ = nullptr;
};

} // namespace

bool video_encoding_available() noexcept {
  return true;
}

std::optional<std::string> write_mp4(const std::string& path,
                                     const video_frames& video,
                                     const std::string& audio_path) {
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
  std::optional<audio_track> audio;
  if (!audio_path.empty()) {
    audio.emplace();
    auto samples =
      static_cast<int64_t>(video.frames) * audio_track::sample_rate / video.fps;
    if (auto err = audio->open(audio_path, out.format, samples))
      return err;
  }
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
  if (audio)
    if (auto err = audio->write(out.format, packet.get()))
      return err;
  rc = av_write_trailer(out.format);
  if (rc < 0)
    return "writing the MP4 trailer: " + av_error(rc);
  return std::nullopt;
}

const char* video_file_extension() noexcept {
  return "mp4";
}

std::optional<std::string> write_video(const std::string& path,
                                       const video_frames& video,
                                       const std::string& audio_path) {
  return write_mp4(path, video, audio_path);
}

std::optional<std::string> probe_audio(const std::string& path) {
  quiet_ffmpeg_logs();
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec)
    return "cannot read it (" + ec.message() + ")";
  if (size == 0)
    return "it is empty (0 bytes)";
  input_file in;
  int index = -1;
  codec_context_ptr decoder;
  return open_audio_input(path, in, index, decoder);
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
    if (par->codec_type == AVMEDIA_TYPE_AUDIO && !info.has_audio) {
      info.has_audio = true;
      auto audio = in.format->streams[i];
      if (audio->duration != AV_NOPTS_VALUE)
        info.audio_seconds =
          static_cast<double>(audio->duration) * av_q2d(audio->time_base);
    }
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
