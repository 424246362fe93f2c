// WenetLogSoftmax (version 1): y = log_softmax(x) over the last dimension, computed in FP32 for
// FP32 or FP16 inputs/outputs.
//
// Why: the decoder scores every hypothesis with a log-softmax over the vocabulary (4233 in the
// contest model) before gathering the target tokens; FP16 decoder engines miss the 2e-4 median
// relative-error threshold, and this keeps the reduction and the exp/log in FP32 whatever the
// engine's precision.
//
// No fields. Input x [..., V] (any rank >= 1, V >= 1); output y of the same shape and type
// (FP32 or FP16, linear format).
//
// Kernel: one block of 256 threads per row, three plain passes over the row in global memory:
// the maximum, the sum of exp(x - max), then y = (x - max) - log(sum), the formula onnxruntime
// uses. expf/logf (not the fast intrinsics), FP32 accumulation.
#include "common.h"

#include <cuda_fp16.h>

#include <cmath>

namespace wenet_trt
{
namespace
{
char const* const kName = "WenetLogSoftmax";
char const* const kVersion = "1";
constexpr uint32_t kMagic = 0x4c534d31;   // "1MSL": format of this plugin's serialization
constexpr int32_t kThreads = 256;

__device__ __forceinline__ float toFloat(float v) { return v; }
__device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half fromFloat<__half>(float v) { return __float2half_rn(v); }

struct MaxOp
{
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp
{
    __device__ float operator()(float a, float b) const { return a + b; }
};

// Block-wide reduction; every thread gets the result. `scratch` holds one value per warp.
template <typename Op>
__device__ float blockReduce(float v, float* scratch, Op op)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
    int const warp = threadIdx.x / 32;
    int const lane = threadIdx.x % 32;
    __syncthreads();   // scratch may still be read by the previous reduction
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    v = scratch[0];
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w)
        v = op(v, scratch[w]);
    return v;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) logSoftmaxKernel(T const* __restrict__ x, T* __restrict__ y, int32_t width)
{
    __shared__ float scratch[kThreads / 32];
    int64_t const base = static_cast<int64_t>(blockIdx.x) * width;
    float m = -INFINITY;
    for (int32_t i = threadIdx.x; i < width; i += blockDim.x)
        m = fmaxf(m, toFloat(x[base + i]));
    m = blockReduce(m, scratch, MaxOp());
    float s = 0.f;
    for (int32_t i = threadIdx.x; i < width; i += blockDim.x)
        s += expf(toFloat(x[base + i]) - m);
    float const logSum = logf(blockReduce(s, scratch, SumOp()));
    for (int32_t i = threadIdx.x; i < width; i += blockDim.x)
        y[base + i] = fromFloat<T>((toFloat(x[base + i]) - m) - logSum);
}

} // namespace

class LogSoftmaxPlugin final : public PluginBase
{
public:
    static LogSoftmaxPlugin* deserialize(void const* data, size_t length)
    {
        Reader r(data, length);
        if (r.get<uint32_t>() != kMagic || !r.ok() || r.left() != 0)
        {
            logError(kName, "serialized data is not a %s v%s plugin", kName, kVersion);
            return nullptr;
        }
        return new LogSoftmaxPlugin();
    }

    char const* getPluginType() const noexcept override { return kName; }
    char const* getPluginVersion() const noexcept override { return kVersion; }
    int32_t getNbOutputs() const noexcept override { return 1; }
    int32_t initialize() noexcept override { return 0; }
    void terminate() noexcept override {}
    size_t getSerializationSize() const noexcept override { return sizeof(uint32_t); }
    void serialize(void* buffer) const noexcept override { Writer(buffer).put(kMagic); }

    nvinfer1::IPluginV2DynamicExt* clone() const noexcept override
    {
        auto* p = new LogSoftmaxPlugin();
        p->setPluginNamespace(mNamespace.c_str());
        return p;
    }

    nvinfer1::DimsExprs getOutputDimensions(int32_t, nvinfer1::DimsExprs const* inputs, int32_t,
        nvinfer1::IExprBuilder&) noexcept override
    {
        return inputs[0];
    }

    bool supportsFormatCombination(int32_t pos, PluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override
    {
        if (nbInputs != 1 || nbOutputs != 1)
        {
            reportOnce("expects 1 input and 1 output, got %d and %d", nbInputs, nbOutputs);
            return false;
        }
        PluginTensorDesc const& t = inOut[pos];
        if (pos == 0 && t.dims.nbDims == 0)
        {
            reportOnce("input must have rank >= 1 (log-softmax over the last dimension)");
            return false;
        }
        return t.format == TensorFormat::kLINEAR && isFloatOrHalf(t.type) && (pos == 0 || t.type == inOut[0].type);
    }

    void configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t, nvinfer1::DynamicPluginTensorDesc const*,
        int32_t) noexcept override
    {
        Dims const& d = in[0].desc.dims;
        if (d.nbDims < 1 || d.d[d.nbDims - 1] == 0)
            reportOnce("input must be [..., V] with V >= 1; configured with %d dims", d.nbDims);
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*, void const* const* inputs,
        void* const* outputs, void*, cudaStream_t stream) noexcept override
    {
        Dims const& d = inputDesc[0].dims;
        int64_t const rows = leadingRows(d);
        if (d.nbDims < 1 || d.d[d.nbDims - 1] < 1 || rows < 0 || rows > 0x7fffffff)
        {
            logError(kName, "unsupported input shape: %d dims, last %d, %lld rows (need [..., V], V >= 1, "
                "rows < 2^31)", d.nbDims, d.nbDims > 0 ? d.d[d.nbDims - 1] : -1, static_cast<long long>(rows));
            return 1;
        }
        if (rows == 0)
            return 0;
        int32_t const width = d.d[d.nbDims - 1];
        dim3 const grid(static_cast<unsigned>(rows));
        if (inputDesc[0].type == DataType::kFLOAT)
            logSoftmaxKernel<float><<<grid, kThreads, 0, stream>>>(
                static_cast<float const*>(inputs[0]), static_cast<float*>(outputs[0]), width);
        else if (inputDesc[0].type == DataType::kHALF)
            logSoftmaxKernel<__half><<<grid, kThreads, 0, stream>>>(
                static_cast<__half const*>(inputs[0]), static_cast<__half*>(outputs[0]), width);
        else
        {
            logError(kName, "unsupported data type %d (FP32 or FP16 only)", static_cast<int>(inputDesc[0].type));
            return 1;
        }
        return launchStatus(kName);
    }

private:
    template <typename... Args>
    void reportOnce(char const* fmt, Args... args)
    {
        if (!mReported)
            logError(kName, fmt, args...);
        mReported = true;
    }
    bool mReported{false};
};

class LogSoftmaxCreator final : public CreatorBase
{
public:
    LogSoftmaxCreator() { setFields({}); }
    char const* getPluginName() const noexcept override { return kName; }
    char const* getPluginVersion() const noexcept override { return kVersion; }

    nvinfer1::IPluginV2* createPlugin(char const*, PluginFieldCollection const*) noexcept override
    {
        auto* p = new LogSoftmaxPlugin();
        p->setPluginNamespace(mNamespace.c_str());
        return p;
    }

    nvinfer1::IPluginV2* deserializePlugin(char const*, void const* data, size_t length) noexcept override
    {
        LogSoftmaxPlugin* p = LogSoftmaxPlugin::deserialize(data, length);
        if (p != nullptr)
            p->setPluginNamespace(mNamespace.c_str());
        return p;
    }
};

REGISTER_TENSORRT_PLUGIN(LogSoftmaxCreator);

} // namespace wenet_trt
