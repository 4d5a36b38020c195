/**
 * The embedded CPython interpreter that runs MINDIR files for the CPU runtime.
 *
 * Python starts on the first Load, as the interpreter that built this runtime (so that its
 * mindspore is found), and shuts down from an atexit handler registered after the first run:
 * MindSpore's C++ singletons are created during that run, and Python must be finalised before
 * their destructors run, or the process crashes at exit.
 */
#ifndef SKNET_CPU_RUNTIME_PYTHON_BACKEND_H_
#define SKNET_CPU_RUNTIME_PYTHON_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct _object;  // CPython's PyObject, kept out of this header

namespace ms_cpu_runtime {
struct TensorSpec {
  std::string name;
  std::string dtype;  // a numpy dtype name such as "float32"
  std::vector<int64_t> shape;
};

struct HostTensor {
  TensorSpec spec;
  std::vector<char> data;
};

struct HostBuffer {
  const void *data;
  size_t size;
};

// One MINDIR loaded by mindir_runner.MindirRunner. Every call returns false with *error on failure.
class PythonModel {
 public:
  static std::shared_ptr<PythonModel> Load(const std::string &path, std::string *error);
  ~PythonModel();
  PythonModel(const PythonModel &) = delete;
  PythonModel &operator=(const PythonModel &) = delete;

  // Compiles the graph for the CPU by running it once.
  bool Build(std::string *error);
  bool built() const { return built_; }
  const std::vector<TensorSpec> &inputs() const { return inputs_; }
  // Runs the graph on one buffer per input, which must match inputs() in count and size.
  bool Predict(const std::vector<HostBuffer> &buffers, std::vector<HostTensor> *outputs, std::string *error);

 private:
  PythonModel(_object *runner, std::vector<TensorSpec> inputs) : runner_(runner), inputs_(std::move(inputs)) {}

  _object *runner_;
  std::vector<TensorSpec> inputs_;
  bool built_ = false;
};

// Bytes per element of a numpy dtype name, or 0 for one this runtime does not handle.
size_t DtypeSize(const std::string &dtype);
}  // namespace ms_cpu_runtime

#endif  // SKNET_CPU_RUNTIME_PYTHON_BACKEND_H_
