// Host-side check of the plugin library without TensorRT or a GPU (tests/plugins/test_plugin_build.py).
//
//   host_check path/to/libwenet_trt_plugins.so
//
// This program defines getPluginRegistry() itself (exported with -rdynamic) and returns a
// recording registry, so dlopen-ing the library runs its REGISTER_TENSORRT_PLUGIN registrars
// against it. Then it drives each creator and plugin the way TensorRT's ONNX parser and builder
// do, through every path that needs no CUDA call: fields, validation errors, serialization round
// trips, format combinations, output shapes, and the enqueue-time shape errors. Kernels are
// checked on the GPU host (test_gpu_plugins.py). One line per failed check; exit 1 if any.
#include <NvInfer.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace
{
class RecordingRegistry : public IPluginRegistry
{
public:
    std::vector<IPluginCreator*> creators;
    bool registerCreator(IPluginCreator& c, AsciiChar const* const) noexcept override
    {
        creators.push_back(&c);
        return true;
    }
    IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept override
    {
        *n = static_cast<int32_t>(creators.size());
        return creators.data();
    }
    IPluginCreator* getPluginCreator(AsciiChar const* const name, AsciiChar const* const version,
        AsciiChar const* const = "") noexcept override
    {
        for (auto* c : creators)
            if (!std::strcmp(c->getPluginName(), name) && !std::strcmp(c->getPluginVersion(), version))
                return c;
        return nullptr;
    }
    void setErrorRecorder(IErrorRecorder* const) noexcept override {}
    IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
    bool isParentSearchEnabled() const override { return false; }
    void setParentSearchEnabled(bool const) override {}
    PluginLibraryHandle loadLibrary(AsciiChar const*) noexcept override { return nullptr; }
    void deregisterLibrary(PluginLibraryHandle) noexcept override {}
    bool deregisterCreator(IPluginCreator const&) noexcept override { return false; }
};
RecordingRegistry gRegistry;

class NoExprBuilder : public IExprBuilder   // the plugins pass input dims through and never build
{
public:
    NoExprBuilder() { mImpl = nullptr; }
};

int gChecks = 0, gFailures = 0;
void check(bool ok, std::string const& what)
{
    ++gChecks;
    if (!ok)
    {
        ++gFailures;
        std::printf("FAIL %s\n", what.c_str());
    }
}

PluginTensorDesc desc(std::vector<int32_t> dims, DataType type = DataType::kFLOAT,
    TensorFormat format = TensorFormat::kLINEAR)
{
    PluginTensorDesc d{};
    d.dims.nbDims = static_cast<int32_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
        d.dims.d[i] = dims[i];
    d.type = type;
    d.format = format;
    d.scale = 1.f;
    return d;
}

std::vector<char> bytesOf(IPluginV2 const& p)
{
    std::vector<char> b(p.getSerializationSize());
    p.serialize(b.data());
    return b;
}

bool allFormats(IPluginV2DynamicExt& p, std::vector<PluginTensorDesc> const& io, int32_t nbIn)
{
    bool ok = true;
    for (int32_t pos = 0; pos < static_cast<int32_t>(io.size()); ++pos)
        ok = ok && p.supportsFormatCombination(pos, io.data(), nbIn, static_cast<int32_t>(io.size()) - nbIn);
    return ok;
}

IPluginV2DynamicExt* createLn(IPluginCreator& c, std::vector<float> const& gamma, std::vector<float> const& beta,
    int32_t residual, int32_t outputSum, float eps = 1e-5f, PluginFieldType gammaType = PluginFieldType::kFLOAT32)
{
    std::vector<PluginField> f{PluginField("epsilon", &eps, PluginFieldType::kFLOAT32, 1),
        PluginField("gamma", gamma.data(), gammaType, static_cast<int32_t>(gamma.size())),
        PluginField("beta", beta.data(), PluginFieldType::kFLOAT32, static_cast<int32_t>(beta.size())),
        PluginField("residual", &residual, PluginFieldType::kINT32, 1),
        PluginField("output_sum", &outputSum, PluginFieldType::kINT32, 1)};
    PluginFieldCollection fc{static_cast<int32_t>(f.size()), f.data()};
    return static_cast<IPluginV2DynamicExt*>(c.createPlugin("ln", &fc));
}

void checkLayerNorm(IPluginCreator& c)
{
    PluginFieldCollection const* names = c.getFieldNames();
    std::vector<std::string> got;
    for (int32_t i = 0; i < names->nbFields; ++i)
        got.emplace_back(names->fields[i].name);
    check(got == std::vector<std::string>{"epsilon", "gamma", "beta", "residual", "output_sum"}, "LN field names");

    int32_t const E = 8;
    std::vector<float> gamma(E, 1.5f), beta(E, -0.25f);
    IPluginV2DynamicExt* p = createLn(c, gamma, beta, 1, 1);
    check(p != nullptr, "LN valid create");
    if (p == nullptr)
        return;
    check(std::string(p->getPluginType()) == "WenetLayerNorm" && std::string(p->getPluginVersion()) == "1",
        "LN type/version");
    check(p->getNbOutputs() == 2, "LN output_sum=1 has 2 outputs");
    check(p->getSerializationSize() == 4 + 4 + 3 * 4 + 2 * E * 4, "LN serialization size");
    std::vector<char> bytes = bytesOf(*p);
    IPluginV2* q = c.deserializePlugin("ln", bytes.data(), bytes.size());
    check(q != nullptr && bytesOf(*q) == bytes, "LN deserialize(serialize) round trip");
    check(c.deserializePlugin("ln", bytes.data(), bytes.size() - 1) == nullptr, "LN truncated data refused");
    std::vector<char> longer(bytes);
    longer.push_back(0);
    check(c.deserializePlugin("ln", longer.data(), longer.size()) == nullptr, "LN trailing bytes refused");
    std::vector<char> wrong(bytes);
    wrong[0] ^= 1;
    check(c.deserializePlugin("ln", wrong.data(), wrong.size()) == nullptr, "LN wrong magic refused");

    // formats: [x, residual, y, sum]
    auto io = [&](DataType t, std::vector<int32_t> dx, std::vector<int32_t> dr) {
        return std::vector<PluginTensorDesc>{desc(dx, t), desc(dr, t), desc(dx, t), desc(dx, t)};
    };
    check(allFormats(*p, io(DataType::kFLOAT, {2, 3, E}, {2, 3, E}), 2), "LN FP32 I/O supported");
    check(allFormats(*p, io(DataType::kHALF, {2, 3, E}, {2, 3, E}), 2), "LN FP16 I/O supported");
    check(allFormats(*p, io(DataType::kFLOAT, {-1, -1, E}, {-1, -1, E}), 2), "LN dynamic leading dims supported");
    check(!allFormats(*p, io(DataType::kINT8, {2, 3, E}, {2, 3, E}), 2), "LN INT8 refused");
    auto mixed = io(DataType::kFLOAT, {2, 3, E}, {2, 3, E});
    mixed[2].type = DataType::kHALF;
    check(!p->supportsFormatCombination(2, mixed.data(), 2, 2), "LN mixed FP32/FP16 refused");
    auto chw = io(DataType::kHALF, {2, 3, E}, {2, 3, E});
    chw[0].format = TensorFormat::kCHW2;
    check(!p->supportsFormatCombination(0, chw.data(), 2, 2), "LN non-linear format refused");
    check(!allFormats(*p, io(DataType::kFLOAT, {2, 3, E + 1}, {2, 3, E + 1}), 2), "LN wrong width refused");
    check(!allFormats(*p, io(DataType::kFLOAT, {2, 3, E}, {1, 3, E}), 2), "LN broadcast residual refused");
    check(!allFormats(*p, io(DataType::kFLOAT, {2, 3, E}, {3, E}), 2), "LN residual rank refused");
    auto three = io(DataType::kFLOAT, {2, 3, E}, {2, 3, E});
    check(!p->supportsFormatCombination(0, three.data(), 1, 3), "LN wrong input count refused");

    NoExprBuilder eb;
    DimsExprs in[2]{};
    in[0].nbDims = 3;
    in[1].nbDims = 3;
    DimsExprs out = p->getOutputDimensions(1, in, 2, eb);
    check(out.nbDims == 3, "LN output dims are x's");

    // enqueue refuses bad shapes before touching the GPU; an empty tensor is a no-op
    void const* ins[2] = {nullptr, nullptr};
    void* outs[2] = {nullptr, nullptr};
    auto bad = io(DataType::kFLOAT, {2, 3, E + 1}, {2, 3, E + 1});
    check(p->enqueue(bad.data(), bad.data() + 2, ins, outs, nullptr, nullptr) != 0, "LN enqueue wrong width fails");
    auto rshape = io(DataType::kFLOAT, {2, 3, E}, {2, 4, E});
    check(p->enqueue(rshape.data(), rshape.data() + 2, ins, outs, nullptr, nullptr) != 0,
        "LN enqueue residual shape mismatch fails");
    auto empty = io(DataType::kFLOAT, {0, 3, E}, {0, 3, E});
    check(p->enqueue(empty.data(), empty.data() + 2, ins, outs, nullptr, nullptr) == 0, "LN enqueue empty is a no-op");

    IPluginV2DynamicExt* plain = createLn(c, gamma, beta, 0, 0, 1e-6f);
    check(plain != nullptr && plain->getNbOutputs() == 1, "LN without residual: 1 output");
    if (plain != nullptr)
    {
        std::vector<PluginTensorDesc> one{desc({5, E}), desc({5, E})};
        check(allFormats(*plain, one, 1), "LN single input [N, E] supported");
        check(!plain->supportsFormatCombination(0, io(DataType::kFLOAT, {2, 3, E}, {2, 3, E}).data(), 2, 1),
            "LN residual=0 refuses 2 inputs");
        plain->destroy();
    }

    // invalid fields: nullptr, never a plugin
    check(createLn(c, std::vector<float>(1025, 1.f), std::vector<float>(1025, 0.f), 0, 0) == nullptr, "LN E > 1024 refused");
    check(createLn(c, gamma, std::vector<float>(E - 1, 0.f), 0, 0) == nullptr, "LN beta length refused");
    check(createLn(c, gamma, beta, 0, 1) == nullptr, "LN output_sum without residual refused");
    check(createLn(c, gamma, beta, 2, 0) == nullptr, "LN residual=2 refused");
    check(createLn(c, gamma, beta, 0, 0, -1.f) == nullptr, "LN negative epsilon refused");
    check(createLn(c, gamma, beta, 0, 0, 1e-5f, PluginFieldType::kINT32) == nullptr, "LN int gamma refused");
    check(createLn(c, {}, {}, 0, 0) == nullptr, "LN empty gamma refused");
    PluginFieldCollection none{0, nullptr};
    check(c.createPlugin("ln", &none) == nullptr, "LN without gamma/beta refused");

    if (q != nullptr)
        q->destroy();
    p->destroy();
}

void checkLogSoftmax(IPluginCreator& c)
{
    check(c.getFieldNames()->nbFields == 0, "LogSoftmax has no fields");
    PluginFieldCollection none{0, nullptr};
    auto* p = static_cast<IPluginV2DynamicExt*>(c.createPlugin("lsm", &none));
    check(p != nullptr, "LogSoftmax create");
    if (p == nullptr)
        return;
    check(std::string(p->getPluginType()) == "WenetLogSoftmax" && p->getNbOutputs() == 1, "LogSoftmax type/outputs");
    std::vector<char> bytes = bytesOf(*p);
    IPluginV2* q = c.deserializePlugin("lsm", bytes.data(), bytes.size());
    check(q != nullptr && bytesOf(*q) == bytes, "LogSoftmax round trip");
    check(c.deserializePlugin("lsm", bytes.data(), 0) == nullptr, "LogSoftmax empty data refused");
    for (DataType t : {DataType::kFLOAT, DataType::kHALF})
    {
        std::vector<PluginTensorDesc> io{desc({-1, 10, 4233}, t), desc({-1, 10, 4233}, t)};
        check(allFormats(*p, io, 1), "LogSoftmax FP32/FP16 I/O supported");
    }
    std::vector<PluginTensorDesc> mixed{desc({4, 4233}), desc({4, 4233}, DataType::kHALF)};
    check(!p->supportsFormatCombination(1, mixed.data(), 1, 1), "LogSoftmax mixed types refused");
    std::vector<PluginTensorDesc> scalar{desc({}), desc({})};
    check(!p->supportsFormatCombination(0, scalar.data(), 1, 1), "LogSoftmax rank 0 refused");
    void const* ins[1] = {nullptr};
    void* outs[1] = {nullptr};
    std::vector<PluginTensorDesc> zeroWidth{desc({4, 0}), desc({4, 0})};
    check(p->enqueue(zeroWidth.data(), zeroWidth.data() + 1, ins, outs, nullptr, nullptr) != 0,
        "LogSoftmax enqueue V = 0 fails");
    std::vector<PluginTensorDesc> empty{desc({0, 7}), desc({0, 7})};
    check(p->enqueue(empty.data(), empty.data() + 1, ins, outs, nullptr, nullptr) == 0, "LogSoftmax empty is a no-op");
    if (q != nullptr)
        q->destroy();
    p->destroy();
}
} // namespace

extern "C" IPluginRegistry* getPluginRegistry() noexcept
{
    return &gRegistry;
}

int main(int argc, char** argv)
{
    if (argc != 2)
    {
        std::fprintf(stderr, "usage: host_check libwenet_trt_plugins.so\n");
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);   // RTLD_LOCAL, like the contest harness's ctypes
    if (lib == nullptr)
    {
        std::printf("FAIL dlopen: %s\n", dlerror());
        return 1;
    }
    for (auto* c : gRegistry.creators)
        std::printf("creator %s %s namespace '%s'\n", c->getPluginName(), c->getPluginVersion(), c->getPluginNamespace());
    check(gRegistry.creators.size() == 2, "two creators registered");
    IPluginCreator* ln = gRegistry.getPluginCreator("WenetLayerNorm", "1");
    IPluginCreator* lsm = gRegistry.getPluginCreator("WenetLogSoftmax", "1");
    check(ln != nullptr, "WenetLayerNorm v1 registered");
    check(lsm != nullptr, "WenetLogSoftmax v1 registered");
    if (ln != nullptr)
        checkLayerNorm(*ln);
    if (lsm != nullptr)
        checkLogSoftmax(*lsm);
    std::printf("host_check: %d checks, %d failures\n", gChecks, gFailures);
    return gFailures == 0 ? 0 : 1;
}
