// The shared HLS corpus (hls-corpus/ beside the project, read-only; its SOURCES.md says where
// each playlist came from) for the property tests that run over every playlist in it.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace balancer::test {

struct CorpusFile {
  std::filesystem::path path;
  std::string text;  // the file's bytes
};

// Every .m3u8 of the corpus, read whole, in name order; none (and a MESSAGE that the test is
// skipped) where the corpus is absent.
inline std::vector<CorpusFile> hls_corpus_files() {
  const std::filesystem::path dir = std::filesystem::path(BALANCER_SHARED_DIR) / "hls-corpus";
  std::vector<CorpusFile> files;
  if (!std::filesystem::is_directory(dir)) {
    MESSAGE("no corpus at " << dir.string() << "; skipped");
    return files;
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".m3u8") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    files.push_back({entry.path(), std::string((std::istreambuf_iterator<char>(in)),
                                               std::istreambuf_iterator<char>())});
  }
  std::sort(files.begin(), files.end(),
            [](const CorpusFile& a, const CorpusFile& b) { return a.path < b.path; });
  return files;
}

}  // namespace balancer::test
