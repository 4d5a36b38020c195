#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "cpu_runtime/python_backend.h"

#include <cstdlib>
#include <utility>

namespace ms_cpu_runtime {
namespace {
// A strong reference that is released while Python still runs.
struct PyRef {
  PyObject *object;
  explicit PyRef(PyObject *value) : object(value) {}
  ~PyRef() {
    if (Py_IsInitialized()) {
      Py_XDECREF(object);
    }
  }
  PyRef(const PyRef &) = delete;
  PyRef &operator=(const PyRef &) = delete;
};

// The pending Python exception as "Type: first line" (MindSpore appends a C++ stack below).
std::string TakePythonError() {
  PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  std::string text = "unknown Python error";
  if (value != nullptr) {
    PyRef message(PyObject_Str(value));
    const char *utf8 = message.object ? PyUnicode_AsUTF8(message.object) : nullptr;
    if (utf8 != nullptr) {
      text = utf8;
    }
  }
  text = text.substr(0, text.find('\n'));
  if (type != nullptr) {
    text = std::string(reinterpret_cast<PyTypeObject *>(type)->tp_name) + ": " + text;
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(traceback);
  PyErr_Clear();
  return text;
}

void ShutDownPython() {
  if (Py_IsInitialized()) {
    Py_FinalizeEx();
  }
}

void ShutDownAtExitAfterFirstRun() {
  static bool registered = false;
  if (!registered) {
    std::atexit(ShutDownPython);
    registered = true;
  }
}

PyObject *g_runner_module = nullptr;

bool StartPython(std::string *error) {
  if (g_runner_module != nullptr) {
    return true;
  }
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;  // Ctrl-C stops the app, not a Python handler that never runs
  // The interpreter that built the runtime: its prefix (and venv, if any) has mindspore.
  PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, MS_CPU_RUNTIME_PYTHON);
  if (!PyStatus_Exception(status)) {
    status = Py_InitializeFromConfig(&config);
  }
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    *error = std::string("cannot start the embedded Python ") + MS_CPU_RUNTIME_PYTHON + ": " +
             (status.err_msg ? status.err_msg : "unknown error");
    return false;
  }
  PyObject *sys_path = PySys_GetObject("path");  // borrowed
  PyRef runtime_dir(PyUnicode_FromString(MS_CPU_RUNTIME_PYDIR));
  if (sys_path == nullptr || runtime_dir.object == nullptr || PyList_Insert(sys_path, 0, runtime_dir.object) != 0) {
    *error = "cannot extend sys.path: " + TakePythonError();
    return false;
  }
  g_runner_module = PyImport_ImportModule("mindir_runner");
  if (g_runner_module == nullptr) {
    *error = std::string("cannot import mindir_runner from ") + MS_CPU_RUNTIME_PYDIR + ": " + TakePythonError();
    return false;
  }
  return true;
}

bool ParseShape(PyObject *list, std::vector<int64_t> *shape) {
  if (!PyList_Check(list)) {
    return false;
  }
  shape->clear();
  for (Py_ssize_t i = 0; i < PyList_Size(list); ++i) {
    shape->push_back(PyLong_AsLongLong(PyList_GetItem(list, i)));
  }
  return !PyErr_Occurred();
}
}  // namespace

size_t DtypeSize(const std::string &dtype) {
  if (dtype == "float64" || dtype == "int64") return 8;
  if (dtype == "float32" || dtype == "int32") return 4;
  if (dtype == "float16") return 2;
  if (dtype == "int8" || dtype == "uint8" || dtype == "bool") return 1;
  return 0;
}

std::shared_ptr<PythonModel> PythonModel::Load(const std::string &path, std::string *error) {
  if (!StartPython(error)) {
    return nullptr;
  }
  PyObject *runner = PyObject_CallMethod(g_runner_module, "MindirRunner", "s", path.c_str());
  if (runner == nullptr) {
    *error = TakePythonError();
    return nullptr;
  }
  std::shared_ptr<PythonModel> model(new PythonModel(runner, {}));
  PyRef specs(PyObject_GetAttrString(runner, "inputs"));
  for (Py_ssize_t i = 0; specs.object != nullptr && i < PyList_Size(specs.object); ++i) {
    const char *name = nullptr, *dtype = nullptr;
    PyObject *shape = nullptr;
    TensorSpec spec;
    if (!PyArg_ParseTuple(PyList_GetItem(specs.object, i), "ssO", &name, &dtype, &shape) ||
        !ParseShape(shape, &spec.shape)) {
      break;
    }
    spec.name = name;
    spec.dtype = dtype;
    model->inputs_.push_back(spec);
  }
  if (PyErr_Occurred() || specs.object == nullptr) {
    *error = "unexpected input description from mindir_runner: " + TakePythonError();
    return nullptr;
  }
  return model;
}

PythonModel::~PythonModel() {
  if (Py_IsInitialized()) {
    Py_XDECREF(runner_);
  }
}

bool PythonModel::Build(std::string *error) {
  PyRef result(PyObject_CallMethod(runner_, "build", nullptr));
  if (result.object == nullptr) {
    *error = TakePythonError();
    return false;
  }
  built_ = true;
  ShutDownAtExitAfterFirstRun();
  return true;
}

bool PythonModel::Predict(const std::vector<HostBuffer> &buffers, std::vector<HostTensor> *outputs,
                          std::string *error) {
  PyRef views(PyList_New(static_cast<Py_ssize_t>(buffers.size())));
  for (size_t i = 0; views.object != nullptr && i < buffers.size(); ++i) {
    // Read-only views of the caller's memory; mindir_runner copies them into tensors.
    PyObject *view = PyMemoryView_FromMemory(static_cast<char *>(const_cast<void *>(buffers[i].data)),
                                             static_cast<Py_ssize_t>(buffers[i].size), PyBUF_READ);
    if (view == nullptr) {
      break;
    }
    PyList_SET_ITEM(views.object, static_cast<Py_ssize_t>(i), view);  // steals the reference
  }
  if (PyErr_Occurred()) {
    *error = TakePythonError();
    return false;
  }
  PyRef results(PyObject_CallMethod(runner_, "predict", "O", views.object));
  if (results.object == nullptr) {
    *error = TakePythonError();
    return false;
  }
  ShutDownAtExitAfterFirstRun();
  outputs->clear();
  for (Py_ssize_t i = 0; i < PyList_Size(results.object); ++i) {
    const char *name = nullptr, *dtype = nullptr, *bytes = nullptr;
    Py_ssize_t size = 0;
    PyObject *shape = nullptr;
    HostTensor output;
    if (!PyArg_ParseTuple(PyList_GetItem(results.object, i), "ssOy#", &name, &dtype, &shape, &bytes, &size) ||
        !ParseShape(shape, &output.spec.shape)) {
      *error = "unexpected output from mindir_runner: " + TakePythonError();
      return false;
    }
    output.spec.name = name;
    output.spec.dtype = dtype;
    output.data.assign(bytes, bytes + size);
    outputs->push_back(std::move(output));
  }
  return true;
}
}  // namespace ms_cpu_runtime
