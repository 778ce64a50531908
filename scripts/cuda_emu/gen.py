# Turns cuda/*.cu into host C++ for the emulator: kernel launches become emu_launch calls
# (after emu_stream_compute of their stream, which runs the copies held on it).
import re, sys, os
def split_top(s):
    parts, depth, cur = [], 0, ''
    for ch in s:
        if ch in '([{<' and not (ch == '<' and False): depth += ch in '([{'
        if ch in ')]}': depth -= 1
        if ch == ',' and depth == 0: parts.append(cur); cur = ''
        else: cur += ch
    parts.append(cur); return [p.strip() for p in parts]
def conv(src):
    src = src.replace('extern __shared__ __align__(128)', 'extern').replace('extern __shared__', 'extern')
    out, i = '', 0
    pat = re.compile(r'([A-Za-z_]\w*(?:<[\w ,]+>)?)<<<')
    while True:
        m = pat.search(src, i)
        if not m: out += src[i:]; break
        out += src[i:m.start()]
        j = src.index('>>>', m.end())
        cfg = split_top(src[m.end():j])
        k = j + 3
        assert src[k] == '(', src[k:k+20]
        depth, p = 0, k
        while True:
            if src[p] == '(': depth += 1
            elif src[p] == ')':
                depth -= 1
                if depth == 0: break
            p += 1
        args = src[k+1:p]
        smem = cfg[2] if len(cfg) > 2 else '0'
        launch = 'emu_launch(dim3(%s), dim3(%s), (size_t)(%s), [&] { %s(%s); })' % (cfg[0], cfg[1], smem, m.group(1), args)
        # the stream's held copies land first (OWLORE_EMU_LATE_COPIES), and it is a compute stream from now on
        out += '(emu_stream_compute(%s), %s)' % (cfg[3] if len(cfg) > 3 else '0', launch)
        i = p + 1
    return out
for f in sys.argv[2:]:
    s = open(f).read()
    open(os.path.join(sys.argv[1], os.path.basename(f).replace('.cu', '.cpp')), 'w').write(conv(s))
