/**
 * Offline inference of an exported SKNet MINDIR with MindSpore Lite's C++ API
 * (runtime/include/api/, linked to runtime/lib/libmindspore-lite.so).
 *
 *   ./main --mindir_path sknet50.mindir --input0_path preprocess_Result/images --device_id 0
 *
 * Runs every .bin file of --input0_path (sorted by name, each one input batch as written by
 * preprocess.py) and writes the model's outputs to --result_path/<name>_<i>.bin. The mean
 * latency of Model::Predict is printed and saved to --time_path. Every failure (build, a missing
 * or wrong-sized input, a failed inference, a failed write) prints "error: ..." and exits with 1.
 */
#include <gflags/gflags.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/status.h"
#include "include/api/types.h"
#include "src/file_utils.h"

DEFINE_string(mindir_path, "", "the MINDIR file written by export.py");
DEFINE_string(input0_path, "", "folder of input .bin files (preprocess.py's images/)");
DEFINE_string(result_path, "./result_Files", "folder that receives one <input>_<output index>.bin per input");
DEFINE_string(time_path, "./time_Result", "folder that receives the latency summary test_perform_static.txt");
DEFINE_string(device_type, "Ascend310", "Ascend310 (MindSpore Lite's Ascend backend) or CPU");
DEFINE_int32(device_id, 0, "the Ascend device to run on");

namespace {
using mindspore::MSTensor;

int Fail(const std::string &message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

// The context that selects --device_type, or nullptr for an unknown device type.
std::shared_ptr<mindspore::Context> MakeContext(const std::string &device_type, int device_id) {
  auto context = std::make_shared<mindspore::Context>();
  if (device_type == "Ascend310") {
    auto ascend = std::make_shared<mindspore::AscendDeviceInfo>();
    ascend->SetDeviceID(static_cast<uint32_t>(device_id));
    context->MutableDeviceInfo().push_back(ascend);
  } else if (device_type == "CPU") {
    context->MutableDeviceInfo().push_back(std::make_shared<mindspore::CPUDeviceInfo>());
  } else {
    return nullptr;
  }
  return context;
}

std::string ShapeText(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    text += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return text + "]";
}

// Checks every input file's size before any inference, so that a bad file leaves no partial results.
bool CheckInputSizes(const std::vector<std::string> &paths, const MSTensor &input, std::string *error) {
  for (const std::string &path : paths) {
    const long long size = FileSize(path);
    if (size != static_cast<long long>(input.DataSize())) {
      *error = "input " + path + " has " + std::to_string(size) + " bytes, but the model's input " + input.Name() +
               " of shape " + ShapeText(input.Shape()) + " takes " + std::to_string(input.DataSize()) +
               "; write the inputs with preprocess.py --mindir_path <this MINDIR>";
      return false;
    }
  }
  return true;
}

bool SaveLatency(double mean_ms, size_t count, std::string *error) {
  if (!MakeDirs(FLAGS_time_path, error)) {
    return false;
  }
  const std::string line = "NN inference cost average time: " + std::to_string(mean_ms) + " ms of infer_count " +
                           std::to_string(count) + "\n";
  return WriteFile(FLAGS_time_path + "/test_perform_static.txt", line.data(), line.size(), error);
}

int Run() {
  if (FLAGS_mindir_path.empty() || FLAGS_input0_path.empty()) {
    return Fail("--mindir_path and --input0_path are required (see --help)");
  }
  auto context = MakeContext(FLAGS_device_type, FLAGS_device_id);
  if (context == nullptr) {
    return Fail("--device_type " + FLAGS_device_type + " is unknown; use Ascend310 or CPU");
  }
  std::string error;
  std::vector<std::string> inputs;
  if (!ListBinFiles(FLAGS_input0_path, &inputs, &error)) {
    return Fail(error);
  }
  if (inputs.empty()) {
    return Fail("input folder " + FLAGS_input0_path + " holds no .bin files; run preprocess.py first");
  }

  mindspore::Model model;
  mindspore::Status status = model.Build(FLAGS_mindir_path, mindspore::ModelType::kMindIR, context);
  if (!status.IsOk()) {
    return Fail("cannot build MINDIR " + FLAGS_mindir_path + " for " + FLAGS_device_type + ": " + status.ToString());
  }
  std::vector<MSTensor> model_inputs = model.GetInputs();
  if (model_inputs.size() != 1) {
    return Fail(FLAGS_mindir_path + " has " + std::to_string(model_inputs.size()) +
                " inputs; this app feeds one (export the model with export.py)");
  }
  MSTensor &input = model_inputs[0];
  if (input.DataType() != mindspore::DataType::kNumberTypeFloat32) {
    return Fail(FLAGS_mindir_path + " takes input of type " + std::to_string(static_cast<int>(input.DataType())) +
                ", not float32; export it with export.py");
  }
  if (!CheckInputSizes(inputs, input, &error) || !MakeDirs(FLAGS_result_path, &error)) {
    return Fail(error);
  }

  double total_ms = 0.0;
  std::vector<char> data;
  for (const std::string &path : inputs) {
    if (!ReadFile(path, &data, &error)) {
      return Fail(error);
    }
    // The input tensor owns its buffer (Lite allocates it); the file's bytes are copied into it.
    void *buffer = input.MutableData();
    if (buffer == nullptr) {
      return Fail("MindSpore Lite gave no buffer for the input " + input.Name() + " of " + FLAGS_mindir_path);
    }
    std::memcpy(buffer, data.data(), data.size());
    std::vector<MSTensor> outputs;
    const auto start = std::chrono::steady_clock::now();
    status = model.Predict(model_inputs, &outputs);
    total_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!status.IsOk()) {
      return Fail("inference on " + path + " failed: " + status.ToString());
    }
    if (outputs.empty()) {
      return Fail("inference on " + path + " returned no output");
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      const std::shared_ptr<const void> logits = outputs[i].Data();
      if (logits == nullptr) {
        return Fail("inference on " + path + " returned output " + std::to_string(i) + " without data");
      }
      const std::string result = FLAGS_result_path + "/" + FileStem(path) + "_" + std::to_string(i) + ".bin";
      if (!WriteFile(result, logits.get(), outputs[i].DataSize(), &error)) {
        return Fail(error);
      }
    }
  }
  const double mean_ms = total_ms / static_cast<double>(inputs.size());
  std::printf("inferred %zu inputs from %s into %s; mean latency %.3f ms per input\n", inputs.size(),
              FLAGS_input0_path.c_str(), FLAGS_result_path.c_str(), mean_ms);
  if (!SaveLatency(mean_ms, inputs.size(), &error)) {
    return Fail(error);
  }
  return 0;
}
}  // namespace

int main(int argc, char **argv) {
  gflags::SetUsageMessage("offline inference of an exported SKNet MINDIR (see README, \"Export and inference\")");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  // Run() returns instead of calling exit(), so the model is released before Lite's libraries unload.
  return Run();
}
