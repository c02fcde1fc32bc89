// Classify one image with a model exported by `convscope export`, using onnxruntime's C++ API.
//
// The image is a binary PGM (P5, grayscale) or PPM (P6, RGB) file, so the program needs no image
// library (convert others with e.g. `convert photo.jpg -resize 32x32! photo.ppm`). Preprocessing
// follows the model's metadata_props: the input size and, unless the normalisation was folded into
// the graph (`--fold-normalization`), the per-channel mean/std applied to pixels scaled to [0, 1].
//
// Build (onnxruntime's C/C++ package from its releases page, unpacked at $ORT; the Python wheel
// ships no headers):
//   g++ -std=c++17 -O2 onnx_predict.cpp -I"$ORT/include" -L"$ORT/lib" -lonnxruntime \
//       -Wl,-rpath,"$ORT/lib" -o onnx_predict
// Run:
//   ./onnx_predict model.onnx digit.pgm

#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Image {
    int width = 0, height = 0, channels = 0;
    std::vector<uint8_t> pixels;  // row-major, channels interleaved (H, W, C)
};

Image read_pnm(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::string magic;
    in >> magic;
    Image img;
    if (magic == "P5") img.channels = 1;
    else if (magic == "P6") img.channels = 3;
    else throw std::runtime_error(path + ": expected a binary PGM (P5) or PPM (P6) file");
    auto next_int = [&in]() {
        int value = 0;
        in >> std::ws;
        while (in.peek() == '#') {  // comment lines
            std::string skip;
            std::getline(in, skip);
            in >> std::ws;
        }
        in >> value;
        return value;
    };
    img.width = next_int();
    img.height = next_int();
    int maxval = next_int();
    if (maxval != 255) throw std::runtime_error(path + ": only 8-bit images (maxval 255) are read");
    in.get();  // the single whitespace before the pixel data
    img.pixels.resize(static_cast<size_t>(img.width) * img.height * img.channels);
    in.read(reinterpret_cast<char*>(img.pixels.data()), static_cast<std::streamsize>(img.pixels.size()));
    if (!in) throw std::runtime_error(path + ": truncated pixel data");
    return img;
}

// "[0.1, 0.2, 0.3]" -> {0.1, 0.2, 0.3}; also splits the class-name list (strings in quotes)
std::vector<std::string> json_list(const std::string& text) {
    std::vector<std::string> items;
    std::string current;
    bool quoted = false;
    for (char ch : text) {
        if (ch == '"') { quoted = !quoted; continue; }
        if (!quoted && (ch == '[' || ch == ']' || ch == ' ')) continue;
        if (!quoted && ch == ',') { items.push_back(current); current.clear(); continue; }
        current += ch;
    }
    if (!current.empty()) items.push_back(current);
    return items;
}

std::string metadata(Ort::Session& session, const char* key) {
    Ort::AllocatorWithDefaultOptions alloc;
    Ort::ModelMetadata meta = session.GetModelMetadata();
    Ort::AllocatedStringPtr value = meta.LookupCustomMetadataMapAllocated(key, alloc);
    return value ? std::string(value.get()) : std::string();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " MODEL.onnx IMAGE.pgm|ppm\n";
        return 2;
    }
    try {
        Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "convscope");
        Ort::SessionOptions options;
        options.SetIntraOpNumThreads(1);
        Ort::Session session(env, argv[1], options);

        // the input is (batch, C, H, W) with a dynamic batch: read C, H, W from the graph
        std::vector<int64_t> shape = session.GetInputTypeInfo(0).GetTensorTypeAndShapeInfo().GetShape();
        if (shape.size() != 4) throw std::runtime_error("expected an (N, C, H, W) image input");
        shape[0] = 1;
        const int64_t c = shape[1], h = shape[2], w = shape[3];

        Image img = read_pnm(argv[2]);
        std::vector<float> mean(c, 0.0f), std_(c, 1.0f);
        if (metadata(session, "preprocessing.normalization_in_graph") == "false") {
            std::vector<std::string> m = json_list(metadata(session, "preprocessing.mean"));
            std::vector<std::string> s = json_list(metadata(session, "preprocessing.std"));
            for (int64_t k = 0; k < c && k < static_cast<int64_t>(m.size()); ++k) {
                mean[k] = std::stof(m[k]);
                std_[k] = std::stof(s[k]);
            }
        }

        // nearest-neighbour resize to H x W, gray <-> RGB as the model needs, scale, normalise
        std::vector<float> input(static_cast<size_t>(c * h * w));
        for (int64_t y = 0; y < h; ++y) {
            for (int64_t x = 0; x < w; ++x) {
                const int64_t sy = y * img.height / h, sx = x * img.width / w;
                const uint8_t* px = &img.pixels[(sy * img.width + sx) * img.channels];
                for (int64_t k = 0; k < c; ++k) {
                    float v;
                    if (c == img.channels) v = px[k];
                    else if (c == 1) v = 0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2];
                    else v = px[0];
                    input[(k * h + y) * w + x] = (v / 255.0f - mean[k]) / std_[k];
                }
            }
        }

        Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
        Ort::Value tensor = Ort::Value::CreateTensor<float>(memory, input.data(), input.size(), shape.data(),
                                                            shape.size());
        Ort::AllocatorWithDefaultOptions alloc;
        Ort::AllocatedStringPtr input_name = session.GetInputNameAllocated(0, alloc);
        Ort::AllocatedStringPtr output_name = session.GetOutputNameAllocated(0, alloc);
        const char* input_names[] = {input_name.get()};
        const char* output_names[] = {output_name.get()};
        std::vector<Ort::Value> outputs =
            session.Run(Ort::RunOptions{nullptr}, input_names, &tensor, 1, output_names, 1);

        const float* logits = outputs[0].GetTensorData<float>();
        const size_t n = outputs[0].GetTensorTypeAndShapeInfo().GetElementCount();
        const float top = *std::max_element(logits, logits + n);
        std::vector<double> prob(n);
        double total = 0;
        for (size_t i = 0; i < n; ++i) total += prob[i] = std::exp(static_cast<double>(logits[i] - top));
        std::vector<size_t> order(n);
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&prob](size_t a, size_t b) { return prob[a] > prob[b]; });
        std::vector<std::string> classes = json_list(metadata(session, "classes"));
        for (size_t r = 0; r < std::min<size_t>(3, n); ++r) {
            const size_t i = order[r];
            std::cout << (i < classes.size() ? classes[i] : std::to_string(i)) << ": " << 100.0 * prob[i] / total
                      << "%\n";
        }
    } catch (const std::exception& e) {  // Ort::Exception derives from std::exception
        std::cerr << "onnx_predict: error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
