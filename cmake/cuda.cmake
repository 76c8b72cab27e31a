# tfe-accel: CUDA kernels (included by CMakeLists.txt when TFE_ACCEL_CUDA is ON, or AUTO and nvcc
# plus, for the TF ops, a CUDA build of TensorFlow are found).
#   tfe_accel_cuda   static library of cc/cuda/*.cu (framework-free kernels, host API tfe_cuda.h)
#   _native          gets cc/python/native_cuda.cc (the cuda_* pybind11 entry points) and the macro
#                    TFE_ACCEL_HAS_CUDA; RegisterCuda() is picked up through the weak hook in
#                    cc/python/native_registry.cc.
# Architectures: CMAKE_CUDA_ARCHITECTURES if given, else 80;90 (A100, H100/H200). The int8 limb
# GEMM needs sm_80+ (mma.sync m16n8k32); the SIMT and GEMV kernels run on any of them.
#   _tfe_accel_ops       where TF is a CUDA build (TFE_ACCEL_TF_GPU): DEVICE_GPU registrations of the
#                    fused ops (cc/tf/tf_gpu.h), launching these kernels on TF's own CUDA stream. Only
#                    TF's stream-executor headers are used (no TF CUDA headers), so any nvcc works;
#                    the kernels carry their own static CUDA runtime (driver >= what nvcc needs).
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  set(CMAKE_CUDA_ARCHITECTURES "80;90")
endif()
if(NOT CMAKE_CUDA_COMPILER)
  find_program(_tfe_nvcc nvcc HINTS /usr/local/cuda/bin ENV CUDA_HOME PATH_SUFFIXES bin)
  if(_tfe_nvcc)
    set(CMAKE_CUDA_COMPILER "${_tfe_nvcc}")
  endif()
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)

file(GLOB TFE_ACCEL_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cc/cuda/*.cu)
add_library(tfe_accel_cuda STATIC ${TFE_ACCEL_CUDA_SOURCES})
target_include_directories(tfe_accel_cuda PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/cc/cuda
                                                 ${CMAKE_CURRENT_SOURCE_DIR}/cc/kernels)
set_target_properties(tfe_accel_cuda PROPERTIES
  POSITION_INDEPENDENT_CODE ON
  CUDA_SEPARABLE_COMPILATION OFF
  CUDA_RUNTIME_LIBRARY Static)
target_compile_options(tfe_accel_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-fvisibility=hidden>)
target_link_libraries(tfe_accel_cuda PUBLIC CUDA::cudart_static)

target_sources(_native PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cc/python/native_cuda.cc)
target_compile_definitions(_native PRIVATE TFE_ACCEL_HAS_CUDA=1)
target_link_libraries(_native PRIVATE tfe_accel_cuda CUDA::cudart_static)
if(TFE_ACCEL_TF_GPU)
  target_compile_definitions(_tfe_accel_ops PRIVATE TFE_ACCEL_TF_GPU=1)
  target_include_directories(_tfe_accel_ops PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
  target_link_libraries(_tfe_accel_ops PRIVATE tfe_accel_cuda CUDA::cudart_static)
endif()
message(STATUS "tfe-accel: TF DEVICE_GPU kernels: ${TFE_ACCEL_TF_GPU}")
message(STATUS "tfe-accel: CUDA ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
