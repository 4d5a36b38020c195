"""`CpuBatchNorm2d`: nn.BatchNorm2d whose training pass runs compiled loops (`batchnorm.cc`); `conv_impl onednn`.

MindSpore 2.10's CPU BatchNorm and BatchNormGrad run oneDNN in plain NCHW layout and were ~100 ms of a
~640 ms SKNet-50 training step at 32x32 and batch 32, twice PyTorch's time for the same BatchNorms
(docs/performance.md); the loops in `batchnorm.cc` take 1.3-2x less for forward + backward on one thread. The
cell has nn.BatchNorm2d's parameters (names, order, initial values), eps and momentum and computes the
same function: in training the batch's statistics, with the moving averages updated as MindSpore updates
them (the variance unbiased); in inference the moving ones, through MindSpore's own kernel.
"""
import numpy as np
import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import initializer

from src.layers.cpu.ops_library import onednn_library, thread_count_input


class CpuBatchNorm2d(nn.Cell):
    """nn.BatchNorm2d(num_features, gamma_init=...) with default eps and momentum, computed as described above."""

    def __init__(self, num_features: int, gamma_init: str = "ones"):
        super().__init__()
        self.eps = 1e-5
        self.moving_mean = Parameter(initializer("zeros", num_features), name="mean", requires_grad=False)
        self.moving_variance = Parameter(initializer("ones", num_features), name="variance", requires_grad=False)
        self.gamma = Parameter(initializer(gamma_init, num_features), name="gamma")
        self.beta = Parameter(initializer("zeros", num_features), name="beta")
        # (eps, the batch's share of the moving averages): nn.BatchNorm2d's momentum=0.9 is the kept share.
        # aot ops have no attributes, so the constants are an input.
        self.constants = ms.Tensor(np.array([self.eps, 0.1], dtype=np.float32))
        self.threads = thread_count_input()
        library = onednn_library()
        # out_shape and out_dtype receive the inputs' shapes (dtypes): (x, gamma, ...) and (dy, x, gamma, ...).
        self.backward = ops.Custom(f"{library}:cpu_batchnorm_backward",
                                   out_shape=lambda dy, x, gamma, *_: (dy, gamma, gamma),
                                   out_dtype=lambda dy, x, gamma, *_: (dy, gamma, gamma), func_type="aot")
        # (y, batch mean, biased batch variance, new moving mean, new moving variance). The gradient is the op's,
        # not a Cell bprop, for the reason in onednn_conv.name_apart; every instance's ops are alike.
        self.statistics = ops.Custom(f"{library}:cpu_batchnorm_forward",
                                     out_shape=lambda x, gamma, *_: (x, gamma, gamma, gamma, gamma),
                                     out_dtype=lambda x, gamma, *_: (x, gamma, gamma, gamma, gamma), func_type="aot",
                                     bprop=self._gradients)
        self.infer = ops.BatchNorm(is_training=False, epsilon=self.eps)

    def construct(self, x):
        if not self.training:
            return self.infer(x, self.gamma, self.beta, self.moving_mean, self.moving_variance)[0]
        y, _, _, moving_mean, moving_variance = self.statistics(x, self.gamma, self.beta, self.moving_mean,
                                                                self.moving_variance, self.constants, self.threads)
        ops.assign(self.moving_mean, moving_mean)
        ops.assign(self.moving_variance, moving_variance)
        return y

    def _gradients(self, x, gamma, beta, moving_mean, moving_variance, constants, threads, out, dout):
        # Only y is differentiated: the statistics reach nothing but the moving averages.
        dx, dgamma, dbeta = self.backward(dout[0], x, gamma, out[1], out[2], constants, threads)
        return (dx, dgamma, dbeta, ops.zeros_like(moving_mean), ops.zeros_like(moving_variance),
                ops.zeros_like(constants), ops.zeros_like(threads))
