// WenetLayerNorm (version 1): y = LayerNorm(x [+ residual]) over the last dimension, computed in
// FP32 for FP32 or FP16 inputs/outputs; optionally also outputs the sum x + residual.
//
// Why: FP16 engines of the WeNet models miss the contest's median-relative-error thresholds;
// normalizing in FP32 while keeping FP16 tensors around it (and fusing the residual Add, whose sum
// the next block reads too) is the plugin the measurements ask for first.
//
// Fields (plugins/wenet_plugins.py writes them as ONNX attributes; the parser types them):
//   epsilon     float32 (kFLOAT32, 1 value; default 1e-5)
//   gamma, beta float32 [E] (kFLOAT32 with E values), 1 <= E <= 1024; serialized with the plugin
//   residual    int32 0/1: a second input, added to x before normalizing (same shape as x)
//   output_sum  int32 0/1: a second output, the sum x + residual (needs residual = 1)
// Inputs: x [..., E] (any rank >= 1), residual (same shape). Outputs: y (shape of x), sum.
// All tensors share one type, FP32 or FP16, linear format.
//
// Kernel: one warp per row. The row's FP32 values go to shared memory, then the mean and the
// variance are two plain passes over them (the same two-pass formula as the exported graph:
// mean, then mean((v - mean)^2)), then y = (v - mean) / sqrt(var + eps) * gamma + beta.
#include "common.h"

#include <cuda_fp16.h>

namespace wenet_trt
{
namespace
{
char const* const kName = "WenetLayerNorm";
char const* const kVersion = "1";
constexpr uint32_t kMagic = 0x4c4e5731;   // "1WNL": format of this plugin's serialization
constexpr int32_t kMaxWidth = 1024;
constexpr int32_t kWarpsPerBlock = 4;     // 4 rows per block, <= 16 KiB of shared memory

__device__ __forceinline__ float toFloat(float v) { return v; }
__device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half fromFloat<__half>(float v) { return __float2half_rn(v); }

__device__ __forceinline__ float warpSum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;   // every lane holds the sum
}

template <typename T>
__global__ void layerNormKernel(T const* __restrict__ x, T const* __restrict__ residual,
    float const* __restrict__ gamma, float const* __restrict__ beta, T* __restrict__ y, T* __restrict__ sum,
    int64_t rows, int32_t width, float epsilon)
{
    extern __shared__ float rowBuffer[];
    int32_t const warp = threadIdx.x / 32;
    int32_t const lane = threadIdx.x % 32;
    int64_t const row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
    if (row >= rows)
        return;   // the whole warp leaves together: the shuffles below always have 32 lanes
    float* v = rowBuffer + warp * width;
    int64_t const base = row * width;

    // Each lane reads and writes only its own indices (i = lane mod 32): no sync needed.
    float partial = 0.f;
    for (int32_t i = lane; i < width; i += 32)
    {
        float a = toFloat(x[base + i]);
        if (residual != nullptr)
            a += toFloat(residual[base + i]);
        v[i] = a;
        partial += a;
    }
    float const mean = warpSum(partial) / width;
    partial = 0.f;
    for (int32_t i = lane; i < width; i += 32)
    {
        float const d = v[i] - mean;
        partial += d * d;
    }
    float const inv = 1.f / sqrtf(warpSum(partial) / width + epsilon);
    for (int32_t i = lane; i < width; i += 32)
    {
        y[base + i] = fromFloat<T>((v[i] - mean) * inv * gamma[i] + beta[i]);
        if (sum != nullptr)
            sum[base + i] = fromFloat<T>(v[i]);
    }
}

} // namespace

class LayerNormPlugin final : public PluginBase
{
public:
    LayerNormPlugin(float epsilon, std::vector<float> gamma, std::vector<float> beta, int32_t residual,
        int32_t outputSum)
        : mEpsilon(epsilon), mGamma(std::move(gamma)), mBeta(std::move(beta)), mResidual(residual),
          mOutputSum(outputSum)
    {
    }
    ~LayerNormPlugin() override { terminate(); }

    // nullptr (with the reason on stderr) where the parameters are not a valid plugin.
    static char const* invalid(float epsilon, std::vector<float> const& gamma, std::vector<float> const& beta,
        int32_t residual, int32_t outputSum)
    {
        if (gamma.empty() || gamma.size() > static_cast<size_t>(kMaxWidth))
            return "gamma must have 1..1024 values (the normalized width)";
        if (beta.size() != gamma.size())
            return "beta must have as many values as gamma";
        if (!(epsilon >= 0.f))
            return "epsilon must be >= 0";
        if (residual != 0 && residual != 1)
            return "residual must be 0 or 1";
        if (outputSum != 0 && outputSum != 1)
            return "output_sum must be 0 or 1";
        if (outputSum == 1 && residual == 0)
            return "output_sum = 1 needs residual = 1 (the sum is x + residual)";
        return nullptr;
    }

    static LayerNormPlugin* deserialize(void const* data, size_t length)
    {
        Reader r(data, length);
        if (r.get<uint32_t>() != kMagic || !r.ok())
        {
            logError(kName, "serialized data is not a %s v%s plugin", kName, kVersion);
            return nullptr;
        }
        float const epsilon = r.get<float>();
        int32_t const width = r.get<int32_t>();
        int32_t const residual = r.get<int32_t>();
        int32_t const outputSum = r.get<int32_t>();
        std::vector<float> gamma, beta;
        if (r.ok() && width > 0 && width <= kMaxWidth)
        {
            r.getFloats(gamma, width);
            r.getFloats(beta, width);
        }
        char const* why = r.ok() && r.left() == 0 ? invalid(epsilon, gamma, beta, residual, outputSum)
                                                  : "serialized data is truncated or has trailing bytes";
        if (why != nullptr)
        {
            logError(kName, "cannot deserialize: %s", why);
            return nullptr;
        }
        return new LayerNormPlugin(epsilon, std::move(gamma), std::move(beta), residual, outputSum);
    }

    // --- IPluginV2 ---
    char const* getPluginType() const noexcept override { return kName; }
    char const* getPluginVersion() const noexcept override { return kVersion; }
    int32_t getNbOutputs() const noexcept override { return 1 + mOutputSum; }

    // gamma and beta live on the device from initialize() to terminate(); both are idempotent.
    int32_t initialize() noexcept override
    {
        if (mDevice != nullptr)
            return 0;
        size_t const bytes = 2 * mGamma.size() * sizeof(float);
        float* device = nullptr;
        if (cudaMalloc(&device, bytes) != cudaSuccess)
        {
            logError(kName, "cudaMalloc of %zu bytes failed: %s", bytes, cudaGetErrorString(cudaGetLastError()));
            return 1;
        }
        std::vector<float> both(mGamma);
        both.insert(both.end(), mBeta.begin(), mBeta.end());
        if (cudaMemcpy(device, both.data(), bytes, cudaMemcpyHostToDevice) != cudaSuccess)
        {
            logError(kName, "copying gamma/beta to the device failed: %s", cudaGetErrorString(cudaGetLastError()));
            cudaFree(device);
            return 1;
        }
        mDevice = device;
        return 0;
    }
    void terminate() noexcept override
    {
        if (mDevice != nullptr)
            cudaFree(mDevice);
        mDevice = nullptr;
    }

    size_t getSerializationSize() const noexcept override
    {
        return sizeof(uint32_t) + sizeof(float) + 3 * sizeof(int32_t) + 2 * mGamma.size() * sizeof(float);
    }
    void serialize(void* buffer) const noexcept override
    {
        Writer w(buffer);
        w.put(kMagic);
        w.put(mEpsilon);
        w.put(static_cast<int32_t>(mGamma.size()));
        w.put(mResidual);
        w.put(mOutputSum);
        w.putFloats(mGamma);
        w.putFloats(mBeta);
    }

    // --- IPluginV2DynamicExt ---
    nvinfer1::IPluginV2DynamicExt* clone() const noexcept override
    {
        auto* p = new LayerNormPlugin(mEpsilon, mGamma, mBeta, mResidual, mOutputSum);
        p->setPluginNamespace(mNamespace.c_str());
        p->initialize();   // as TensorRT's own plugins do; enqueue retries if this failed
        return p;
    }

    nvinfer1::DimsExprs getOutputDimensions(int32_t, nvinfer1::DimsExprs const* inputs, int32_t,
        nvinfer1::IExprBuilder&) noexcept override
    {
        return inputs[0];   // y and the sum have the shape of x
    }

    bool supportsFormatCombination(int32_t pos, PluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override
    {
        if (nbInputs != 1 + mResidual || nbOutputs != getNbOutputs())
        {
            reportOnce("expects %d input(s) and %d output(s) (residual=%d, output_sum=%d), got %d and %d",
                1 + mResidual, getNbOutputs(), mResidual, mOutputSum, nbInputs, nbOutputs);
            return false;
        }
        PluginTensorDesc const& t = inOut[pos];
        if (t.format != TensorFormat::kLINEAR || !isFloatOrHalf(t.type) || (pos > 0 && t.type != inOut[0].type))
            return false;
        char const* why = staticShapeError(inOut, pos, nbInputs);
        if (why != nullptr)
        {
            reportOnce("%s", why);
            return false;
        }
        return true;
    }

    void configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const*, int32_t) noexcept override
    {
        // Cannot fail here (void); the same checks run at every enqueue, which does fail.
        Dims const& d = in[0].desc.dims;
        if (d.nbDims < 1 || (d.d[d.nbDims - 1] >= 0 && d.d[d.nbDims - 1] != width()))
            reportOnce("input x must be [..., %d] (the width of gamma); configured with %d dims, last %d", width(),
                d.nbDims, d.nbDims > 0 ? d.d[d.nbDims - 1] : -1);
        if (nbInputs != 1 + mResidual)
            reportOnce("expects %d input(s), configured with %d", 1 + mResidual, nbInputs);
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*, void const* const* inputs,
        void* const* outputs, void*, cudaStream_t stream) noexcept override
    {
        Dims const& d = inputDesc[0].dims;
        if (d.nbDims < 1 || d.d[d.nbDims - 1] != width())
        {
            logError(kName, "input x must be [..., %d]; got %d dims, last %d", width(), d.nbDims,
                d.nbDims > 0 ? d.d[d.nbDims - 1] : -1);
            return 1;
        }
        if (mResidual && !sameDims(d, inputDesc[1].dims))
        {
            logError(kName, "residual must have the shape of x (no broadcasting)");
            return 1;
        }
        int64_t const rows = leadingRows(d);
        if (rows < 0 || (rows + kWarpsPerBlock - 1) / kWarpsPerBlock > 0x7fffffff)
        {
            logError(kName, "unsupported number of rows %lld", static_cast<long long>(rows));
            return 1;
        }
        if (rows == 0)
            return 0;
        if (mDevice == nullptr && initialize() != 0)
            return 1;
        float const* gamma = mDevice;
        float const* beta = mDevice + width();
        dim3 const grid(static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock));
        dim3 const block(32 * kWarpsPerBlock);
        size_t const shared = kWarpsPerBlock * width() * sizeof(float);
        if (inputDesc[0].type == DataType::kFLOAT)
            layerNormKernel<float><<<grid, block, shared, stream>>>(static_cast<float const*>(inputs[0]),
                mResidual ? static_cast<float const*>(inputs[1]) : nullptr, gamma, beta,
                static_cast<float*>(outputs[0]), mOutputSum ? static_cast<float*>(outputs[1]) : nullptr, rows,
                width(), mEpsilon);
        else if (inputDesc[0].type == DataType::kHALF)
            layerNormKernel<__half><<<grid, block, shared, stream>>>(static_cast<__half const*>(inputs[0]),
                mResidual ? static_cast<__half const*>(inputs[1]) : nullptr, gamma, beta,
                static_cast<__half*>(outputs[0]), mOutputSum ? static_cast<__half*>(outputs[1]) : nullptr, rows,
                width(), mEpsilon);
        else
        {
            logError(kName, "unsupported data type %d (FP32 or FP16 only)", static_cast<int>(inputDesc[0].type));
            return 1;
        }
        return launchStatus(kName);
    }

private:
    int32_t width() const { return static_cast<int32_t>(mGamma.size()); }

    static bool sameDims(Dims const& a, Dims const& b)
    {
        if (a.nbDims != b.nbDims)
            return false;
        for (int32_t i = 0; i < a.nbDims; ++i)
            if (a.d[i] != b.d[i])
                return false;
        return true;
    }

    // Shape errors visible before the build (static dims; -1 marks a dynamic one).
    char const* staticShapeError(PluginTensorDesc const* inOut, int32_t pos, int32_t nbInputs) const
    {
        Dims const& x = inOut[0].dims;
        if (pos == 0 && x.nbDims > 0 && x.d[x.nbDims - 1] >= 0 && x.d[x.nbDims - 1] != width())
            return "input x's last dimension differs from the width of gamma/beta";
        if (pos == 1 && nbInputs == 2)
        {
            Dims const& r = inOut[1].dims;
            if (r.nbDims != x.nbDims)
                return "residual must have the rank of x (no broadcasting)";
            for (int32_t i = 0; i < x.nbDims; ++i)
                if (x.d[i] >= 0 && r.d[i] >= 0 && x.d[i] != r.d[i])
                    return "residual must have the shape of x (no broadcasting)";
        }
        return nullptr;
    }

    template <typename... Args>
    void reportOnce(char const* fmt, Args... args)
    {
        if (mReported)
            return;
        mReported = true;
        logError(kName, fmt, args...);
    }

    float mEpsilon;
    std::vector<float> mGamma, mBeta;
    int32_t mResidual, mOutputSum;
    float* mDevice{nullptr};   // gamma then beta, 2 * E floats
    bool mReported{false};
};

class LayerNormCreator final : public CreatorBase
{
public:
    LayerNormCreator()
    {
        setFields({PluginField("epsilon", nullptr, PluginFieldType::kFLOAT32, 1),
            PluginField("gamma", nullptr, PluginFieldType::kFLOAT32, 0),
            PluginField("beta", nullptr, PluginFieldType::kFLOAT32, 0),
            PluginField("residual", nullptr, PluginFieldType::kINT32, 1),
            PluginField("output_sum", nullptr, PluginFieldType::kINT32, 1)});
    }
    char const* getPluginName() const noexcept override { return kName; }
    char const* getPluginVersion() const noexcept override { return kVersion; }

    nvinfer1::IPluginV2* createPlugin(char const*, PluginFieldCollection const* fc) noexcept override
    {
        std::vector<float> epsilon{1e-5f}, gamma, beta;
        int32_t residual = 0, outputSum = 0;
        PluginField const* f = nullptr;
        if ((f = findField(fc, "epsilon")) != nullptr && !floatsField(kName, *f, epsilon))
            return nullptr;
        if ((f = findField(fc, "gamma")) == nullptr)
            return missing("gamma");
        if (!floatsField(kName, *f, gamma))
            return nullptr;
        if ((f = findField(fc, "beta")) == nullptr)
            return missing("beta");
        if (!floatsField(kName, *f, beta))
            return nullptr;
        if ((f = findField(fc, "residual")) != nullptr && !intField(kName, *f, residual))
            return nullptr;
        if ((f = findField(fc, "output_sum")) != nullptr && !intField(kName, *f, outputSum))
            return nullptr;
        if (epsilon.size() != 1)
        {
            logError(kName, "epsilon must be one float, got %zu", epsilon.size());
            return nullptr;
        }
        char const* why = LayerNormPlugin::invalid(epsilon[0], gamma, beta, residual, outputSum);
        if (why != nullptr)
        {
            logError(kName, "cannot create: %s", why);
            return nullptr;
        }
        auto* p = new LayerNormPlugin(epsilon[0], std::move(gamma), std::move(beta), residual, outputSum);
        p->setPluginNamespace(mNamespace.c_str());
        return p;
    }

    nvinfer1::IPluginV2* deserializePlugin(char const*, void const* data, size_t length) noexcept override
    {
        LayerNormPlugin* p = LayerNormPlugin::deserialize(data, length);
        if (p != nullptr)
            p->setPluginNamespace(mNamespace.c_str());
        return p;
    }

private:
    static nvinfer1::IPluginV2* missing(char const* field)
    {
        logError(kName, "cannot create: field %s (float32 [E]) is required", field);
        return nullptr;
    }
};

REGISTER_TENSORRT_PLUGIN(LayerNormCreator);

} // namespace wenet_trt
