/**
 * File helpers of the 310 app, on POSIX calls only (the Ascend hosts' older g++ lacks a
 * dependable <filesystem>).
 */
#ifndef SKNET_ASCEND310_INFER_FILE_UTILS_H_
#define SKNET_ASCEND310_INFER_FILE_UTILS_H_

#include <cstddef>
#include <string>
#include <vector>

// Sets *paths to the .bin files directly in `dir`, sorted by name; false with *error if `dir` cannot be read.
bool ListBinFiles(const std::string &dir, std::vector<std::string> *paths, std::string *error);

// Size of a regular file in bytes, or -1 when it is missing or not a regular file.
long long FileSize(const std::string &path);

// Reads the whole file into *data; false with *error on any failure.
bool ReadFile(const std::string &path, std::vector<char> *data, std::string *error);

// Writes `size` bytes to `path` (replacing it); false with *error on any failure, a short write included.
bool WriteFile(const std::string &path, const void *data, size_t size, std::string *error);

// Creates `dir` and its missing parents; false with *error when it cannot.
bool MakeDirs(const std::string &dir, std::string *error);

// "batch_00001" for "/x/images/batch_00001.bin".
std::string FileStem(const std::string &path);

#endif  // SKNET_ASCEND310_INFER_FILE_UTILS_H_
