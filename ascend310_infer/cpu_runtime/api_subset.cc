/**
 * A development and CI backend for MindSpore's C++ inference API, for machines without an
 * Ascend device: it defines exactly the part of include/api/ that ascend310_infer/src/main.cc
 * uses (Serialization::Load, Model::Build/GetInputs/Predict, MSTensor, Context, Status), and runs
 * the MINDIR with MindSpore's Python runtime on the CPU (python_backend.h).
 *
 * It is compiled against the real headers of the mindspore 2.7.0 wheel, so main.cc is the same
 * source that links the vendor library on an Ascend host. It never stands in for that library
 * on a device: Model::Build accepts only a CPUDeviceInfo. A call main.cc does not make is not
 * defined here, so using more of the API fails at link time instead of misbehaving.
 */
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cpu_runtime/python_backend.h"
#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/serialization.h"
#include "include/api/status.h"
#include "include/api/types.h"

namespace mindspore {
namespace {
struct DtypeName {
  enum DataType type;
  const char *numpy_name;
};
constexpr DtypeName kDtypeNames[] = {
  {DataType::kNumberTypeFloat32, "float32"}, {DataType::kNumberTypeFloat16, "float16"},
  {DataType::kNumberTypeFloat64, "float64"}, {DataType::kNumberTypeInt8, "int8"},
  {DataType::kNumberTypeInt32, "int32"},     {DataType::kNumberTypeInt64, "int64"},
  {DataType::kNumberTypeUInt8, "uint8"},     {DataType::kNumberTypeBool, "bool"},
};

enum DataType ToDataType(const std::string &numpy_name) {
  for (const auto &entry : kDtypeNames) {
    if (numpy_name == entry.numpy_name) return entry.type;
  }
  return DataType::kTypeUnknown;
}

size_t ByteSize(const ms_cpu_runtime::TensorSpec &spec) {
  size_t bytes = ms_cpu_runtime::DtypeSize(spec.dtype);
  for (int64_t dim : spec.shape) bytes *= static_cast<size_t>(dim);
  return bytes;
}
}  // namespace

// ---- Status -------------------------------------------------------------------------------
struct Status::Data {
  enum StatusCode status_code = kSuccess;
  std::string status_msg;
};

Status::Status() : data_(std::make_shared<Data>()) {}

Status::Status(enum StatusCode status_code, const std::vector<char> &status_msg) : data_(std::make_shared<Data>()) {
  data_->status_code = status_code;
  data_->status_msg = CharToString(status_msg);
}

bool Status::IsOk() const { return data_->status_code == kSuccess; }

std::vector<char> Status::ToCString() const { return StringToChar(data_->status_msg); }

// ---- MSTensor -----------------------------------------------------------------------------
class MSTensor::Impl {
 public:
  Impl(std::string tensor_name, enum DataType data_type, std::vector<int64_t> dims, std::vector<char> bytes)
      : name(std::move(tensor_name)), type(data_type), shape(std::move(dims)), data(std::move(bytes)) {}
  std::string name;
  enum DataType type;
  std::vector<int64_t> shape;
  std::vector<char> data;
};

MSTensor::MSTensor() : impl_(nullptr) {}
MSTensor::MSTensor(const std::shared_ptr<Impl> &impl) : impl_(impl) {}
MSTensor::MSTensor(const std::vector<char> &name, enum DataType type, const std::vector<int64_t> &shape,
                   const void *data, size_t data_len)
    : impl_(std::make_shared<Impl>(CharToString(name), type, shape,
                                   std::vector<char>(static_cast<const char *>(data),
                                                     static_cast<const char *>(data) + data_len))) {}
MSTensor::~MSTensor() = default;

std::vector<char> MSTensor::CharName() const { return StringToChar(impl_ ? impl_->name : ""); }
enum DataType MSTensor::DataType() const { return impl_ ? impl_->type : DataType::kTypeUnknown; }
const std::vector<int64_t> &MSTensor::Shape() const {
  static const std::vector<int64_t> kNoShape;
  return impl_ ? impl_->shape : kNoShape;
}
size_t MSTensor::DataSize() const { return impl_ ? impl_->data.size() : 0; }
std::shared_ptr<const void> MSTensor::Data() const {
  if (!impl_) return nullptr;
  return std::shared_ptr<const void>(impl_, impl_->data.data());  // keeps the tensor's memory alive
}

// ---- Context ------------------------------------------------------------------------------
struct Context::Data {
  std::vector<std::shared_ptr<DeviceInfoContext>> device_info_list;
};
struct DeviceInfoContext::Data {
  uint32_t device_id = 0;
};

Context::Context() : data_(std::make_shared<Data>()) {}
std::vector<std::shared_ptr<DeviceInfoContext>> &Context::MutableDeviceInfo() { return data_->device_info_list; }
DeviceInfoContext::DeviceInfoContext() : data_(std::make_shared<Data>()) {}
void AscendDeviceInfo::SetDeviceID(uint32_t device_id) { data_->device_id = device_id; }

// ---- Graph, GraphCell, Serialization ------------------------------------------------------
class Graph::GraphData {
 public:
  explicit GraphData(std::shared_ptr<ms_cpu_runtime::PythonModel> loaded) : model(std::move(loaded)) {}
  std::shared_ptr<ms_cpu_runtime::PythonModel> model;
};

Graph::Graph() : graph_data_(nullptr) {}
Graph::Graph(const std::shared_ptr<GraphData> &graph_data) : graph_data_(graph_data) {}
Graph::~Graph() = default;

GraphCell::GraphCell(const Graph &graph) : graph_(std::make_shared<Graph>(graph)) {}

// The key function of GraphCell's vtable, so it must exist; this runtime runs graphs through Model.
Status GraphCell::Run(const std::vector<MSTensor> &, std::vector<MSTensor> *) {
  return Status(kMEFailed, "GraphCell::Run is not part of the CPU runtime; use Model::Build and Model::Predict");
}

Status Serialization::Load(const std::vector<char> &file, ModelType model_type, Graph *graph, const Key &dec_key,
                           const std::vector<char> &) {
  if (graph == nullptr) {
    return Status(kMEInvalidInput, "Serialization::Load needs a Graph to fill, got nullptr");
  }
  if (model_type != kMindIR || dec_key.len != 0) {
    return Status(kMEInvalidInput, "the CPU runtime loads unencrypted MINDIR files only");
  }
  std::string error;
  auto model = ms_cpu_runtime::PythonModel::Load(CharToString(file), &error);
  if (model == nullptr) {
    return Status(kMEInvalidInput, error);
  }
  const auto graph_data = std::make_shared<Graph::GraphData>(model);
  *graph = Graph(graph_data);
  return Status();
}

// ---- Model --------------------------------------------------------------------------------
class ModelImpl {
 public:
  static std::shared_ptr<ms_cpu_runtime::PythonModel> ModelOf(const Graph &graph) {
    return graph.graph_data_ ? graph.graph_data_->model : nullptr;
  }
  std::shared_ptr<ms_cpu_runtime::PythonModel> model;
};

Model::Model() : impl_(std::make_shared<ModelImpl>()) {}
Model::~Model() = default;

Status Model::Build(GraphCell graph, const std::shared_ptr<Context> &model_context,
                    const std::shared_ptr<TrainCfg> &) {
  auto model = graph.GetGraph() ? ModelImpl::ModelOf(*graph.GetGraph()) : nullptr;
  if (model == nullptr) {
    return Status(kMCInvalidInput, "the graph is empty; load it with Serialization::Load first");
  }
  if (model_context == nullptr || model_context->MutableDeviceInfo().size() != 1 ||
      model_context->MutableDeviceInfo()[0]->GetDeviceType() != kCPU) {
    return Status(kMCDeviceError,
                  "this app was built with the CPU runtime (a development/CI backend), which runs only on "
                  "the CPU device; on an Ascend host build it with ascend310_infer/build.sh to use MindSpore's library");
  }
  std::string error;
  if (!model->Build(&error)) {
    return Status(kMCFailed, error);
  }
  impl_->model = model;
  return Status();
}

std::vector<MSTensor> Model::GetInputs() {
  std::vector<MSTensor> inputs;
  if (!impl_->model) return inputs;
  for (const auto &spec : impl_->model->inputs()) {
    inputs.emplace_back(std::make_shared<MSTensor::Impl>(spec.name, ToDataType(spec.dtype), spec.shape,
                                                         std::vector<char>(ByteSize(spec))));
  }
  return inputs;
}

Status Model::Predict(const std::vector<MSTensor> &inputs, std::vector<MSTensor> *outputs, const MSKernelCallBack &,
                      const MSKernelCallBack &) {
  if (!impl_->model || outputs == nullptr) {
    return Status(kMCFailed, "Predict needs a built model (Model::Build) and an output vector");
  }
  const std::vector<ms_cpu_runtime::TensorSpec> &expected = impl_->model->inputs();
  if (inputs.size() != expected.size()) {
    return Status(kMCInvalidInput, "the model takes " + std::to_string(expected.size()) + " inputs, got " +
                                       std::to_string(inputs.size()));
  }
  std::vector<ms_cpu_runtime::HostBuffer> buffers;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].DataSize() != ByteSize(expected[i]) || inputs[i].DataType() != ToDataType(expected[i].dtype)) {
      return Status(kMCInvalidInput, "input " + std::to_string(i) + " has " + std::to_string(inputs[i].DataSize()) +
                                         " bytes or another type; the model takes " +
                                         std::to_string(ByteSize(expected[i])) + " bytes of " + expected[i].dtype);
    }
    buffers.push_back({inputs[i].Data().get(), inputs[i].DataSize()});
  }
  std::vector<ms_cpu_runtime::HostTensor> results;
  std::string error;
  if (!impl_->model->Predict(buffers, &results, &error)) {
    return Status(kMCFailed, error);
  }
  outputs->clear();
  for (auto &result : results) {
    outputs->emplace_back(std::make_shared<MSTensor::Impl>(result.spec.name, ToDataType(result.spec.dtype),
                                                           result.spec.shape, std::move(result.data)));
  }
  return Status();
}
}  // namespace mindspore
