#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <filesystem>
#include <random>

#include "../../gpu/src/tiny_t2v_hooks.hpp"
#include "support/pipelines.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"
#include "vidnode/gpu/video.hpp"

using namespace vidnode;

namespace {

runtime::device_info cpu_device() {
  runtime::device_info device;
  device.kind = runtime::device_kind::cpu;
  device.memory_bytes = 8ull << 30;
  return device;
}

runtime::job_spec small_job(uint64_t seed) {
  runtime::job_spec spec;
  spec.model = "tiny-t2v";
  spec.prompt = "a lighthouse at dusk";
  spec.width = 64;
  spec.height = 48;
  spec.frames = 3;
  spec.steps = 2;
  spec.fps = 6;
  spec.seed = seed;
  return spec;
}

std::string temp_path(const char* name) {
  return (std::filesystem::temp_directory_path()
          / (std::string{"vidnode-test-"} + std::to_string(getpid()) + "-"
             + name))
    .string();
}

} // namespace

TEST_CASE("tiny-t2v makes frames of the requested shape, the same for the "
          "same seed and different for another",
          "[torch]") {
  if (!gpu::torch_available()) {
    WARN("skipped: this build has no libtorch");
    return;
  }
  gpu::tiny_t2v_factory factory;
  auto first = test::generate_on_cpu(factory, small_job(7));
  CHECK(first.frames == 3);
  CHECK(first.width == 64);
  CHECK(first.height == 48);
  CHECK(first.fps == 6);
  CHECK(first.rgb.size() == size_t{3} * 48 * 64 * 3);
  CHECK(test::generate_on_cpu(factory, small_job(7)).rgb == first.rgb);
  CHECK(test::generate_on_cpu(factory, small_job(8)).rgb != first.rgb);
  // Not a constant picture.
  auto [lo, hi] = std::minmax_element(first.rgb.begin(), first.rgb.end());
  CHECK(*hi - *lo > 16);
}

TEST_CASE("tiny-t2v weights saved to a file load back to the same model",
          "[torch]") {
  if (!gpu::torch_available()) {
    WARN("skipped: this build has no libtorch");
    return;
  }
  auto path = temp_path("weights.pt");
  REQUIRE_FALSE(gpu::save_tiny_t2v_weights(path));
  gpu::tiny_t2v_factory builtin;
  gpu::tiny_t2v_factory from_file{path};
  CHECK(test::generate_on_cpu(from_file, small_job(3)).rgb
        == test::generate_on_cpu(builtin, small_job(3)).rgb);
  std::filesystem::remove(path);
  gpu::tiny_t2v_factory missing{path};
  auto pipeline = missing.make("tiny-t2v", cpu_device());
  CHECK_THROWS_AS(pipeline->load(small_job(3)), gpu::job_error);
}

TEST_CASE("tiny-t2v weights of the layout before temporal attention are "
          "refused with a message that says so",
          "[torch]") {
  if (!gpu::torch_available()) {
    WARN("skipped: this build has no libtorch");
    return;
  }
  auto path = temp_path("old-weights.pt");
  REQUIRE_FALSE(gpu::tiny_t2v_hooks::save_old_layout_weights(path));
  gpu::tiny_t2v_factory old_file{path};
  auto pipeline = old_file.make("tiny-t2v", cpu_device());
  try {
    pipeline->load(small_job(3));
    FAIL("nothing thrown");
  } catch (const gpu::job_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("cannot load weights from " + path)
                           && Catch::Contains("older tiny-t2v"));
  }
  std::filesystem::remove(path);
}

TEST_CASE("tiny-t2v refuses options and its memory estimate grows with the "
          "video's size",
          "[torch]") {
  gpu::tiny_t2v_factory factory;
  auto spec = small_job(1);
  CHECK_FALSE(factory.validate(spec));
  spec.options["step_ms"] = "5";
  REQUIRE(factory.validate(spec));
  CHECK_THAT(*factory.validate(spec), Catch::Contains("step_ms"));
  auto base = small_job(1);
  auto bigger = [&](auto mutate) {
    auto s = base;
    mutate(s);
    return factory.estimate_peak_bytes(s) > factory.estimate_peak_bytes(base);
  };
  CHECK(bigger([](auto& s) { s.width *= 4; }));
  CHECK(bigger([](auto& s) { s.height *= 4; }));
  CHECK(bigger([](auto& s) { s.frames *= 4; }));
  CHECK_FALSE(factory.runs_on(runtime::device_kind::sim));
  CHECK(factory.runs_on(runtime::device_kind::cpu));
}

TEST_CASE("frames are written as an H.264 MP4 that reads back with the same "
          "frame count, size and rate",
          "[media]") {
  if (!gpu::video_encoding_available()) {
    WARN("skipped: this build has no FFmpeg");
    return;
  }
  gpu::video_frames video;
  video.frames = 10;
  video.width = 64;
  video.height = 32;
  video.fps = 12;
  video.rgb.resize(size_t{10} * 64 * 32 * 3);
  for (size_t i = 0; i < video.rgb.size(); ++i)
    video.rgb[i] = static_cast<uint8_t>(i * 7 % 251);
  auto path = temp_path("video.mp4");
  REQUIRE_FALSE(gpu::write_mp4(path, video));
  std::string error;
  auto info = gpu::probe_video(path, error);
  INFO(error);
  REQUIRE(info);
  CHECK(info->codec == "h264");
  CHECK(info->width == 64);
  CHECK(info->height == 32);
  CHECK(info->frames == 10);
  CHECK(info->fps == Approx(12.0));
  CHECK_FALSE(info->has_audio);
  std::filesystem::remove(path);
  video.rgb.pop_back();
  CHECK(gpu::write_mp4(path, video));
  CHECK(gpu::write_mp4("/nonexistent-dir/x.mp4", video));
}

namespace {

/// Writes a mono 16-bit PCM WAV of a 440 Hz tone.
void write_wav(const std::string& path, double seconds, int rate = 22050) {
  auto samples = static_cast<uint32_t>(seconds * rate);
  std::ofstream out{path, std::ios::binary};
  auto u32 = [&](uint32_t x) { out.write(reinterpret_cast<char*>(&x), 4); };
  auto u16 = [&](uint16_t x) { out.write(reinterpret_cast<char*>(&x), 2); };
  out << "RIFF";
  u32(36 + samples * 2);
  out << "WAVEfmt ";
  u32(16);
  u16(1); // PCM
  u16(1); // mono
  u32(static_cast<uint32_t>(rate));
  u32(static_cast<uint32_t>(rate) * 2);
  u16(2);
  u16(16);
  out << "data";
  u32(samples * 2);
  for (uint32_t i = 0; i < samples; ++i)
    u16(static_cast<uint16_t>(
      static_cast<int16_t>(8000 * std::sin(2 * 3.14159265 * 440 * i / rate))));
}

gpu::video_frames grey_video(int32_t frames, int32_t fps) {
  gpu::video_frames video;
  video.frames = frames;
  video.width = 32;
  video.height = 32;
  video.fps = fps;
  video.rgb.assign(size_t(frames) * 32 * 32 * 3, 128);
  return video;
}

} // namespace

TEST_CASE("an audio track is muxed as AAC, cut or padded to the video's "
          "length",
          "[media]") {
  if (!gpu::video_encoding_available()) {
    WARN("skipped: this build has no FFmpeg");
    return;
  }
  auto video = grey_video(12, 12); // one second
  auto out = temp_path("with-audio.mp4");
  for (double seconds : {3.0, 0.2}) {
    auto wav = temp_path("tone.wav");
    write_wav(wav, seconds);
    INFO(seconds << " s of audio");
    REQUIRE_FALSE(gpu::write_mp4(out, video, wav));
    std::string error;
    auto info = gpu::probe_video(out, error);
    INFO(error);
    REQUIRE(info);
    CHECK(info->has_audio);
    CHECK(info->frames == 12);
    CHECK(info->audio_seconds == Approx(1.0).margin(0.05));
    std::filesystem::remove(wav);
  }
  auto garbage = temp_path("noise.wav");
  std::ofstream{garbage} << "this is not audio";
  auto err = gpu::write_mp4(out, video, garbage);
  REQUIRE(err);
  CHECK_THAT(*err, Catch::Contains("audio"));
  std::filesystem::remove(garbage);
  std::filesystem::remove(out);
}

TEST_CASE("a WAV file passes the audio probe", "[media]") {
  auto wav = temp_path("probed.wav");
  write_wav(wav, 0.5);
  auto why = gpu::probe_audio(wav);
  std::filesystem::remove(wav);
  if (!gpu::video_encoding_available()) {
    REQUIRE(why);
    CHECK_THAT(*why, Catch::Contains("without FFmpeg"));
    return;
  }
  CHECK(why == std::nullopt);
}

TEST_CASE("an empty file, HTML and random bytes fail the audio probe with "
          "the reason",
          "[media]") {
  auto path = temp_path("not-audio");
  std::mt19937 random{7};
  std::string noise(64 << 10, '\0');
  for (auto& x : noise)
    x = static_cast<char>(random());
  struct input {
    const char* what;
    std::string bytes;
    const char* reason;
  };
  for (const auto& x :
       {input{"empty", "", "it is empty"},
        input{"HTML",
              "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
              "<body><p>Please sign in.</p></body></html>\n",
              "not audio FFmpeg can decode"},
        input{"random bytes", noise, "not audio FFmpeg can decode"}}) {
    std::ofstream{path, std::ios::binary} << x.bytes;
    auto why = gpu::probe_audio(path);
    INFO(x.what);
    REQUIRE(why);
    INFO(*why);
    if (gpu::video_encoding_available())
      CHECK_THAT(*why, Catch::Contains(x.reason));
    else
      CHECK_THAT(*why, Catch::Contains("without FFmpeg"));
  }
  std::filesystem::remove(path);
  auto missing = gpu::probe_audio(path);
  REQUIRE(missing);
}
