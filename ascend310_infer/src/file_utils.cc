#include "src/file_utils.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace {
bool EndsWith(const std::string &text, const std::string &suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string ErrnoText() { return std::strerror(errno); }
}  // namespace

bool ListBinFiles(const std::string &dir, std::vector<std::string> *paths, std::string *error) {
  std::unique_ptr<DIR, int (*)(DIR *)> handle(opendir(dir.c_str()), closedir);
  if (handle == nullptr) {
    *error = "cannot open input folder " + dir + ": " + ErrnoText();
    return false;
  }
  paths->clear();
  while (const dirent *entry = readdir(handle.get())) {
    const std::string path = dir + "/" + entry->d_name;
    if (EndsWith(entry->d_name, ".bin") && FileSize(path) >= 0) {
      paths->push_back(path);
    }
  }
  std::sort(paths->begin(), paths->end());
  return true;
}

long long FileSize(const std::string &path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return -1;
  }
  return static_cast<long long>(info.st_size);
}

bool ReadFile(const std::string &path, std::vector<char> *data, std::string *error) {
  std::unique_ptr<FILE, int (*)(FILE *)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  const long long size = FileSize(path);
  if (file == nullptr || size < 0) {
    *error = "cannot open " + path + ": " + ErrnoText();
    return false;
  }
  data->resize(static_cast<size_t>(size));
  if (std::fread(data->data(), 1, data->size(), file.get()) != data->size()) {
    *error = "cannot read all " + std::to_string(size) + " bytes of " + path;
    return false;
  }
  return true;
}

bool WriteFile(const std::string &path, const void *data, size_t size, std::string *error) {
  FILE *file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    *error = "cannot create " + path + ": " + ErrnoText();
    return false;
  }
  const bool written = std::fwrite(data, 1, size, file) == size;
  // fclose flushes, so a full disk may only show here.
  if (std::fclose(file) != 0 || !written) {
    *error = "cannot write " + std::to_string(size) + " bytes to " + path + ": " + ErrnoText();
    return false;
  }
  return true;
}

bool MakeDirs(const std::string &dir, std::string *error) {
  for (size_t end = dir.find('/', 1);; end = dir.find('/', end + 1)) {
    const std::string prefix = dir.substr(0, end);
    if (!prefix.empty() && mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      *error = "cannot create folder " + prefix + ": " + ErrnoText();
      return false;
    }
    if (end == std::string::npos) {
      break;
    }
  }
  struct stat info {};
  if (stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    *error = dir + " exists but is not a folder";
    return false;
  }
  return true;
}

std::string FileStem(const std::string &path) {
  const size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = name.find_last_of('.');
  return dot == std::string::npos ? name : name.substr(0, dot);
}
