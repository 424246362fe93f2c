// Shared helpers of the WeNet TensorRT plugins: error lines, serialization, plugin fields,
// and the plugin/creator boilerplate (namespace, destroy, field list).
//
// Written against the TensorRT 8.6 headers (IPluginV2DynamicExt + IPluginCreator, registered
// with REGISTER_TENSORRT_PLUGIN). Everything here is host code.
#pragma once

#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace wenet_trt
{

using nvinfer1::DataType;
using nvinfer1::Dims;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;
using nvinfer1::PluginTensorDesc;
using nvinfer1::TensorFormat;

// One line on stderr, prefixed with the plugin's name. TensorRT 8.6 hands a plugin no logger
// of the builder or runtime that uses it, and stderr reaches every caller (build logs, pytest).
inline void logError(char const* who, char const* fmt, ...)
{
    std::va_list args;
    va_start(args, fmt);
    std::fprintf(stderr, "[%s] error: ", who);
    std::vfprintf(stderr, fmt, args);
    std::fputc('\n', stderr);
    va_end(args);
}

// enqueue's status after a kernel launch: 0, or 1 with the launch error on stderr.
inline int32_t launchStatus(char const* who)
{
    cudaError_t const err = cudaGetLastError();
    if (err != cudaSuccess)
    {
        logError(who, "kernel launch failed: %s", cudaGetErrorString(err));
        return 1;
    }
    return 0;
}

// Rows of a [..., width] tensor: the product of every dimension but the last (-1 if any is < 0).
inline int64_t leadingRows(Dims const& d)
{
    int64_t rows = 1;
    for (int32_t i = 0; i + 1 < d.nbDims; ++i)
    {
        if (d.d[i] < 0)
            return -1;
        rows *= d.d[i];
    }
    return rows;
}

inline bool isFloatOrHalf(DataType t)
{
    return t == DataType::kFLOAT || t == DataType::kHALF;
}

// --- serialization: plain little-endian copies, checked against the buffer length on read ---
class Writer
{
public:
    explicit Writer(void* buffer) : mPtr(static_cast<char*>(buffer)) {}
    template <typename T>
    void put(T value)
    {
        std::memcpy(mPtr, &value, sizeof(T));
        mPtr += sizeof(T);
    }
    void putFloats(std::vector<float> const& v)
    {
        if (!v.empty())
            std::memcpy(mPtr, v.data(), v.size() * sizeof(float));
        mPtr += v.size() * sizeof(float);
    }

private:
    char* mPtr;
};

class Reader
{
public:
    Reader(void const* buffer, size_t length) : mPtr(static_cast<char const*>(buffer)), mLeft(buffer ? length : 0) {}
    template <typename T>
    T get()
    {
        T value{};
        if (mLeft < sizeof(T))
        {
            mOk = false;
            return value;
        }
        std::memcpy(&value, mPtr, sizeof(T));
        mPtr += sizeof(T);
        mLeft -= sizeof(T);
        return value;
    }
    void getFloats(std::vector<float>& v, int64_t n)
    {
        if (n < 0 || mLeft < static_cast<size_t>(n) * sizeof(float))
        {
            mOk = false;
            return;
        }
        v.resize(static_cast<size_t>(n));
        if (n > 0)
            std::memcpy(v.data(), mPtr, static_cast<size_t>(n) * sizeof(float));
        mPtr += n * sizeof(float);
        mLeft -= n * sizeof(float);
    }
    bool ok() const { return mOk; }
    size_t left() const { return mLeft; }

private:
    char const* mPtr;
    size_t mLeft;
    bool mOk{true};
};

// --- plugin fields (the ONNX parser types them: FLOAT(S) -> kFLOAT32, INT(S) -> kINT32,
// float32 TENSOR -> kFLOAT32 with one entry per element) ---
inline PluginField const* findField(PluginFieldCollection const* fc, char const* name)
{
    if (fc == nullptr || fc->fields == nullptr)
        return nullptr;
    for (int32_t i = 0; i < fc->nbFields; ++i)
        if (fc->fields[i].name != nullptr && std::strcmp(fc->fields[i].name, name) == 0)
            return &fc->fields[i];
    return nullptr;
}

// Reads a kFLOAT32 field of any length into `out`; false (with an error line) on a wrong type.
inline bool floatsField(char const* who, PluginField const& f, std::vector<float>& out)
{
    if (f.type != PluginFieldType::kFLOAT32 || f.length < 0 || (f.length > 0 && f.data == nullptr))
    {
        logError(who, "field %s must be float32 (kFLOAT32), got type %d length %d", f.name,
            static_cast<int>(f.type), f.length);
        return false;
    }
    auto const* p = static_cast<float const*>(f.data);
    out.assign(p, p + f.length);
    return true;
}

inline bool intField(char const* who, PluginField const& f, int32_t& out)
{
    if (f.type != PluginFieldType::kINT32 || f.length != 1 || f.data == nullptr)
    {
        logError(who, "field %s must be one int32 (kINT32), got type %d length %d", f.name,
            static_cast<int>(f.type), f.length);
        return false;
    }
    out = *static_cast<int32_t const*>(f.data);
    return true;
}

// --- boilerplate shared by the plugins and the creators ---
class PluginBase : public nvinfer1::IPluginV2DynamicExt
{
public:
    void setPluginNamespace(char const* ns) noexcept override { mNamespace = ns ? ns : ""; }
    char const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }
    void destroy() noexcept override { delete this; }
    DataType getOutputDataType(int32_t, DataType const* inputTypes, int32_t nbInputs) const noexcept override
    {
        return nbInputs > 0 ? inputTypes[0] : DataType::kFLOAT;   // outputs have the input's type
    }
    size_t getWorkspaceSize(PluginTensorDesc const*, int32_t, PluginTensorDesc const*, int32_t) const noexcept override
    {
        return 0;
    }

protected:
    std::string mNamespace;
};

class CreatorBase : public nvinfer1::IPluginCreator
{
public:
    void setPluginNamespace(char const* ns) noexcept override { mNamespace = ns ? ns : ""; }
    char const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }
    PluginFieldCollection const* getFieldNames() noexcept override { return &mCollection; }

protected:
    void setFields(std::vector<PluginField> fields)
    {
        mFields = std::move(fields);
        mCollection.nbFields = static_cast<int32_t>(mFields.size());
        mCollection.fields = mFields.empty() ? nullptr : mFields.data();
    }
    std::string mNamespace;
    std::vector<PluginField> mFields;
    PluginFieldCollection mCollection{0, nullptr};
};

} // namespace wenet_trt
