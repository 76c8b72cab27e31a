"""NumPy model of LimbSplitKernel + LimbMmaKernel (cc/cuda/ring_matmul.cu): the same index
arithmetic (limb planes, 48-byte shared-memory rows, per-lane fragment loads, the
mma.m16n8k32 .u8 fragment layouts of the PTX ISA, the per-shift int32 accumulators, the fold every
4096 k, the epilogue mapping), lane by lane, checked against a plain uint64 matmul. It validates
the kernel's index math and the exactness argument on a CPU; it does not run CUDA code and cannot
catch a wrong assumption about the hardware fragment layout (bench/gpu_check.sh does that).
Slow (pure Python per lane): small shapes only.  Run: python cc/cuda/limb_mma_model.py
"""
import numpy as np
rng = np.random.default_rng(1)
BM=BN=64; BK=32; ROW=48; PLANE=BM*ROW; FLUSH=4096//32
def split(src, R, K, sr, sk, Rp, Kp):
    dst = np.zeros(8*Rp*Kp, np.uint8)
    for r in range(Rp):
        for k in range(0, Kp, 4):
            v=[int(src[r*sr+(k+j)*sk]) if (r<R and k+j<K) else 0 for j in range(4)]
            for l in range(8):
                w=0
                for j in range(4): w |= ((v[j]>>(8*l))&0xff) << (8*j)
                base = r*Kp + k + l*Rp*Kp
                dst[base:base+4] = np.frombuffer(np.uint32(w).tobytes(), np.uint8)
    return dst
def u32(buf, off): return int(np.frombuffer(buf[off:off+4].tobytes(), np.uint32)[0])
def mma(acc, a, b):
    # PTX m16n8k32 u8: A row-major 16x32, B col 32x8; lane = 4g+t
    A=np.zeros((16,32),np.int64); B=np.zeros((32,8),np.int64)
    for lane in range(32):
        g,t=lane>>2,lane&3
        regs=a[lane]
        for rI,(row,kofs) in enumerate([(g,0),(g+8,0),(g,16),(g+8,16)]):
            for j in range(4): A[row,kofs+4*t+j]=(regs[rI]>>(8*j))&0xff
        for rI,kofs in enumerate([0,16]):
            for j in range(4): B[kofs+4*t+j,g]=(b[lane][rI]>>(8*j))&0xff
    Cm=A@B
    for lane in range(32):
        g,t=lane>>2,lane&3
        for e,(row,col) in enumerate([(g,2*t),(g,2*t+1),(g+8,2*t),(g+8,2*t+1)]):
            acc[lane][e]+=int(Cm[row,col])
            assert acc[lane][e] < 2**31
def run(M,N,K,ta,tb):
    a=rng.integers(0,2**64,size=(K,M) if ta else (M,K),dtype=np.uint64); b=rng.integers(0,2**64,size=(N,K) if tb else (K,N),dtype=np.uint64)
    a.reshape(-1)[:3]=[0,1,2**64-1]
    Mp=-(-M//BM)*BM; Np=-(-N//BN)*BN; Kp=-(-K//BK)*BK
    al=split(a.reshape(-1),M,K,1 if ta else K, M if ta else 1,Mp,Kp)
    bl=split(b.reshape(-1),N,K,K if tb else 1, 1 if tb else N,Np,Kp)
    C=np.zeros((M,N),np.uint64)
    for by in range(Mp//BM):
      for bx in range(Np//BN):
        m0,n0=by*BM,bx*BN
        acc={(w,s,mt,nt):[[0]*4 for _ in range(32)] for w in range(8) for s in range(8) for mt in range(2) for nt in range(2)}
        res={(w,mt,nt):[[0]*4 for _ in range(32)] for w in range(8) for mt in range(2) for nt in range(2)}
        since=0; ksteps=Kp//BK
        for ks in range(ksteps):
            k0=ks*BK
            As=np.zeros(8*PLANE,np.uint8); Bs=np.zeros(8*PLANE,np.uint8)
            for e in range(1024):
                l=e//(BM*2); row=(e//2)%BM; half=e&1
                ga=(l*Mp+m0+row)*Kp+k0+16*half; gb=(l*Np+n0+row)*Kp+k0+16*half
                As[l*PLANE+row*ROW+16*half:][:16]=al[ga:ga+16]; Bs[l*PLANE+row*ROW+16*half:][:16]=bl[gb:gb+16]
            for w in range(8):
                wm,wn=w>>2,w&3
                bf={}
                for j in range(8):
                    for nt in range(2):
                        bf[j,nt]=[]
                        for lane in range(32):
                            g,t=lane>>2,lane&3
                            p=j*PLANE+(wn*16+nt*8+g)*ROW+4*t
                            bf[j,nt].append((u32(Bs,p),u32(Bs,p+16)))
                for i in range(8):
                    af={}
                    for mt in range(2):
                        af[mt]=[]
                        for lane in range(32):
                            g,t=lane>>2,lane&3
                            p=i*PLANE+(wm*32+mt*16+g)*ROW+4*t
                            af[mt].append((u32(As,p),u32(As,p+8*ROW),u32(As,p+16),u32(As,p+8*ROW+16)))
                    for j in range(8-i):
                        for mt in range(2):
                            for nt in range(2): mma(acc[w,i+j,mt,nt],af[mt],bf[j,nt])
            since+=1
            if since==FLUSH or ks+1==ksteps:
                since=0
                for w in range(8):
                    for mt in range(2):
                        for nt in range(2):
                            for lane in range(32):
                                for e in range(4):
                                    v=0
                                    for s in range(8):
                                        v=(v+((acc[w,s,mt,nt][lane][e]&0xffffffff)<<(8*s)))%2**64; acc[w,s,mt,nt][lane][e]=0
                                    res[w,mt,nt][lane][e]=(res[w,mt,nt][lane][e]+v)%2**64
        for w in range(8):
            wm,wn=w>>2,w&3
            for mt in range(2):
                for nt in range(2):
                    for lane in range(32):
                        g,t=lane>>2,lane&3
                        for e in range(4):
                            row=m0+wm*32+mt*16+g+(8 if e>=2 else 0); col=n0+wn*16+nt*8+2*t+(e&1)
                            if row<M and col<N: C[row,col]=res[w,mt,nt][lane][e]
    A=a.T if ta else a; B=b.T if tb else b
    with np.errstate(over='ignore'): want=A@B
    ok = np.array_equal(C, want)
    print(f"M={M} N={N} K={K} transpose_a={ta} transpose_b={tb}: {'exact' if ok else 'MISMATCH'}")
    assert ok
if __name__ == "__main__":
    run(70, 66, 40, False, False)
    run(65, 70, 33, True, True)
    run(3, 5, 70, True, False)
