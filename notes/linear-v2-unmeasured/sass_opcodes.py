# Crude sm_90 SASS opcode histogram from a cubin's .text sections (no disassembler on this machine):
# the opcode is the low 12 bits of each 128-bit instruction's first word; names for the opcodes
# validated against the PTX counts (mma.sync -> HMMA, ldmatrix -> LDSM).
import struct, sys, collections
def sections(path):
    d=open(path,'rb').read()
    shoff=struct.unpack_from('<Q',d,0x28)[0]; shentsize,shnum,shstrndx=struct.unpack_from('<HHH',d,0x3A)
    hdr=lambda i: struct.unpack_from('<IIQQQQIIQQ',d,shoff+i*shentsize)
    stro=hdr(shstrndx)[4]
    for i in range(shnum):
        h=hdr(i); n=d[stro+h[0]:d.index(b'\0',stro+h[0])].decode()
        yield n, d[h[4]:h[4]+h[5]]
names={0x23c:'HMMA',0x83b:'LDSM',0x983:'LDL',0x387:'STL',0x984:'LDS',0x388:'STS',0xb1d:'BAR',0x386:'STG',0x3ae:'LDGSTS',0x589:'SHFL'}
for f in sys.argv[1:]:
    for n,b in sections(f):
        if not n.startswith('.text.'): continue
        h=collections.Counter(struct.unpack_from('<Q',b,i)[0] & 0xfff for i in range(0,len(b),16))
        feat='gate_scalar' if 'FeatE2E' in n else 'linear'
        print(f, feat, 'total', len(b)//16, ' '.join('%s=%d'%(names[k],h.get(k,0)) for k in names))
        print('   top:', ', '.join('%03x:%d'%(k,v) for k,v in h.most_common(12)))
