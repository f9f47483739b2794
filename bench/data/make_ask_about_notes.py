"""Builds bench/data/ask_about_notes.jsonl from hand-written questions: line numbers, spans and
which-notes gold sets are looked up mechanically from the notes (the choices are by hand)."""
import json, re, sys
from pathlib import Path
# The shared folder beside the repository (../shared from its root), as the dev sets use it.
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
DEV = SHARED / "notes"; MD = SHARED / "corpora" / "LLMForEverybody"
out = []

def lines(root, f): return (root / f).read_text(encoding="utf-8").split("\n")

def find(root, f, start):
    for i, ln in enumerate(lines(root, f), 1):
        if ln.strip().lstrip("#").strip().startswith(start): return i
    raise SystemExit(f"not found: {f}: {start}")

def md_span(f, heading):
    ls, fence, at = lines(MD, f), False, None
    heads = []
    for i, ln in enumerate(ls, 1):
        if re.match(r"^\s*(```|~~~)", ln): fence = not fence; continue
        m = re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", ln)
        if m and not fence: heads.append((i, len(m.group(1)), m.group(2)))
    for j, (i, lv, t) in enumerate(heads):
        if t.strip() == heading.strip():
            end = next((i2 - 1 for i2, lv2, _ in heads[j + 1:] if lv2 <= lv), len(ls))
            return i, end
    raise SystemExit(f"heading not found: {f}: {heading}")

P = "大模型LLM相关面试题整理-PEFT.txt"; B8 = "大模型算法面试题(八).txt"; B11 = "大模型算法面试题(十一).txt"
B18 = "大模型算法面试题(十八).txt"; K = "模型算法知识点.txt"
# --- scoped, sample notes: gold section by its heading line, end line and anchors copied from it ---
dev_scoped = [
    ("AdapterDrop 是怎么随机丢弃适配器层的？", [P], P, "5.2.5 AdapterDrop", "5.2.6", ["AdapterDrop是一种用于适配器微调的方法"]),
    ("MAM Adapter 里的掩码机制是用来做什么的？", [P], P, "5.2.7 MAM Adapter", "5.3 提示学习", ["MAM Adapter(Masked and Masked Adapter", "掩码机制增强表示能力"]),
    ("QLoRA 是怎么把量化和低秩适应结合在一起的？", [P], P, "5.8.2.1 QLoRA", "5.8.2.2", ["QLoRA(Quantized Low-Rank Adaptation)是一种结合了量化和低秩适应的方法"]),
    ("triplet loss 里的锚点、正样本、负样本分别是什么？", [B8], B8, "4、是否了解triple loss", "5、softmax", ["由锚点(Anchor)、正样本(Positive)和负样本(Negative)组成", "Triplet Loss旨在通过最小化锚点(Anchor)"]),
    ("softmax 反向传播时梯度变得很小，实际中怎么处理？", [B8], B8, "5、softmax", None, ["Softmax函数在梯度反向传播过程中确实可能会遇到梯度钝化", "梯度裁剪(Gradient Clipping)是一种常用的防止梯度爆炸和梯度消失的技术"]),
    ("What is the main difference between data parallelism and model parallelism?", [B11], B11, "2、说一下数据并行和模型并行", "3、混合精度", ["数据并行是一种将数据集划分成多个部分", "数据并行和模型并行是分布式机器学习中的两种主要并行计算策略"]),
    ("DeepSpeed 在节省显存方面用了什么技术？", [B11], B11, "2. 内存优化技术", "3. 混合精度训练支持", ["DeepSpeed引入了ZeRO技术"]),
    ("批处理大小和 GPU 显存、训练速度之间是什么关系？", [B18, P], B18, "3、微调方法批处理大小模式GPU显存速度", "4、能不能总结", ["批处理大小越大,每次迭代所需的显存就越多", "微调方法的批处理大小、模型大小和GPU显存之间存在一定的关系"]),
    ("Why is layer normalization used in Transformers?", [K], K, "8 Layer Normalization的作用是什么", "9 能否用Batch", ["Layer Normalization有助于稳定深层网络的训练"]),
    ("大模型老是重复同样的话，有什么办法缓解？", [K], K, "4. 如何缓解 LLMs 复读机问题", "14. 领域模型Continue PreTrain数据选取", ["数据增强:通过增加训练数据的多样性和复杂性,减少重复模式的出现"]),
]
for i, (q, scope, f, h, nxt, anchors) in enumerate(dev_scoped, 1):
    a = find(DEV, f, h); b = (find(DEV, f, nxt) - 1) if nxt else len(lines(DEV, f))
    for an in anchors:
        assert re.sub(r"\s+", "", an) in re.sub(r"\s+", "", "\n".join(lines(DEV, f)[a - 1:b])) or any(
            re.sub(r"\s+", "", an) in re.sub(r"\s+", "", (DEV / s).read_text(encoding="utf-8")) for s in scope), an
    out.append({"id": f"h-dev-s{i:02d}", "corpus": "dev", "kind": "scoped", "question": q, "in": scope, "file": f,
                "lines": [a, b], "anchors": anchors})

# --- scoped, LLMForEverybody: gold section by heading, span derived as dev-md.jsonl does ---
md_scoped = [
    ("量化以后为什么还要做 weight packing？", ["04-第四章-量化"], "04-第四章-量化/10分钟理解大模型的量化.md", "5. weight packing"),
    ("对称线性量化有什么特点，零点怎么处理？", ["04-第四章-量化"], "04-第四章-量化/10分钟理解大模型的量化.md", "对称线性量化"),
    ("什么叫忠实性幻觉？", ["08-第八章-大模型企业落地"], "08-第八章-大模型企业落地/大模型落地难点之幻觉.md", "忠实性幻觉"),
    ("生成的时候调哪些参数能减少模型复读？", ["08-第八章-大模型企业落地"], "08-第八章-大模型企业落地/大模型复读机问题.md", "生成策略"),
    ("MoE 的稀疏性是什么意思，门控网络怎么选专家？", ["01-第一章-预训练"], "01-第一章-预训练/混合专家模型MoE详解节选.md", "3. 什么是稀疏性?"),
    ("FlashAttention v2 把 rescale 操作改成什么时候做了？", ["01-第一章-预训练"], "01-第一章-预训练/FlashAttentionv2相比于v1有哪些更新？.md", "Rescale操作"),
    ("What is continuous batching and why does it beat naive batching?", ["02-第二章-部署与推理"], "02-第二章-部署与推理/大模型的latency（延迟）和throughput（吞吐量）有什么区别.md", "6. Continuous batching"),
    ("用 Ollama 怎么下载模型？", ["02-第二章-部署与推理"], "02-第二章-部署与推理/大模型推理框架（五）Ollama.md", "3. 下载模型"),
    ("超长上下文会取代 RAG 吗？两者怎么选？", ["07-第七章-Agent"], "07-第七章-Agent/向量数据库拥抱大模型.md", "5. Long Context vs. RAG"),
    ("QLoRA 具体用了哪些技术来省显存？", ["03-第三章-微调", "04-第四章-量化"], "03-第三章-微调/大模型微调之Adapters（三）QLoRA.md", "1.技术解读"),
]
# Two gold sections are copied word for word into another note of the scope (the corpus has
# near-duplicate notes); the answer is then right from either copy, so these are scored by
# phrases copied exactly from the section, as dev.jsonl scores its questions.
DUPLICATED = {
    "忠实性幻觉": (["则是指模型生成的内容与用户的指令或上下文不一致"],
                 "08-第八章-大模型企业落地/CRUDETL工程师的末日从NL2SQL到ChatBI.md"),
    "3. 下载模型": (["ollama pull qwen2:0.5b"], "02-第二章-部署与推理/10分钟私有化部署大模型到本地.md"),
}
for i, (q, scope, f, h) in enumerate(md_scoped, 1):
    a, b = md_span(f, h)
    item = {"id": f"h-md-s{i:02d}", "corpus": "md", "kind": "scoped", "question": q, "in": scope, "file": f,
            "heading": h, "line_start": a, "line_end": b}
    if h in DUPLICATED:
        anchors, copy = DUPLICATED[h]
        section = re.sub(r"\s+", "", "\n".join(lines(MD, f)[a - 1:b]))
        assert all(re.sub(r"\s+", "", x) in section and re.sub(r"\s+", "", x) in re.sub(r"\s+", "", (MD / copy).read_text(
            encoding="utf-8")) for x in anchors)
        item |= {"anchors": anchors, "also_in": copy}
    out.append(item)

# --- whole-note: the note and the top-level headings (content sections; 参考 and the author's footer left out) ---
def dev_sections(f, starts):
    return [{"heading": lines(DEV, f)[find(DEV, f, s) - 1].strip(), "line": find(DEV, f, s)} for s in starts]

def md_sections(f, heads):
    return [{"heading": h, "line": md_span(f, h)[0]} for h in heads]

peft = [f"5.{k} " for k in range(1, 9)]
q5 = [f"{k}、" for k in range(1, 6)]
kq = []  # 模型算法知识点: every numbered question of the note, as a reader sees its outline
for i, ln in enumerate(lines(DEV, K), 1):
    if re.match(r"^\d{1,2}(?:\.|、|\s)\s*\S.{0,70}[?？:：]\s*$", ln.strip()) and i > 119 or (i <= 119 and re.match(r"^\d{1,2}[.、 ]\s*\S.*[?？]\s*$", ln.strip())):
        kq.append({"heading": ln.strip(), "line": i})
dev_whole = [
    ("总结一下《大模型LLM相关面试题整理-PEFT》这篇笔记", P, dev_sections(P, peft)),
    ("Summarize my note on PEFT interview questions", P, dev_sections(P, peft)),
    ("帮我概括一下《大模型算法面试题(八)》", B8, dev_sections(B8, q5)),
    ("大模型算法面试题(八)这篇笔记主要讲了什么？", B8, dev_sections(B8, q5)),
    ("总结一下《大模型算法面试题(十一)》这篇笔记", B11, dev_sections(B11, q5)),
    ("梳理一下大模型算法面试题(十一)的要点", B11, dev_sections(B11, q5)),
    ("总结一下《大模型算法面试题(十八)》", B18, dev_sections(B18, q5)),
    ("Give me an overview of my note 大模型算法面试题(十八)", B18, dev_sections(B18, q5)),
    ("总结一下《模型算法知识点》这篇笔记", K, kq),
    ("模型算法知识点这篇笔记讲了什么？", K, kq),
]
M = "LLMForEverybody"
md_whole = [
    ("总结一下《大模型推理框架（五）Ollama》这篇笔记", "02-第二章-部署与推理/大模型推理框架（五）Ollama.md", ["导入", "Ollama", "ChatBox"]),
    ("帮我概括一下《10分钟理解大模型的量化》", "04-第四章-量化/10分钟理解大模型的量化.md", ["1. 什么是量化", "2. 精度", "3.量化的类型", "4. 量化的粒度", "5. weight packing", "6. PTQ和QAT", "7. 其它行业的量化"]),
    ("总结一下我那篇讲大模型落地难点之幻觉的笔记", "08-第八章-大模型企业落地/大模型落地难点之幻觉.md", ["1. 什么是幻觉？", "2. 处理幻觉", "3. Prompt Engineering", "4. Self-reflection", "5. Few-shot learning (with RAG)", "6. Instruction Fine-tuning", "总结"]),
    ("Summarize my note on 混合专家模型MoE详解节选", "01-第一章-预训练/混合专家模型MoE详解节选.md", ["1. 简短总结", "2. 什么是混合专家模型？", "3. 什么是稀疏性?", "4. 专家的数量对预训练有何影响？", "5. 稀疏 VS 稠密，如何选择?", "6.一些有趣的研究方向"]),
    ("《MCP：基础概念、快速应用和背后原理》这篇笔记的主要内容是什么？", "07-第七章-Agent/MCP：基础概念、快速应用和背后原理.md", ["一、基础概念", "二、使用MCP的方法", "三、MCP的运行原理"]),
    ("总结一下《大模型有哪些评估指标？》这篇笔记", "09-第九章-评估指标/大模型有哪些评估指标？.md", ["1. 导入", "2. Cross Entropy 交叉熵", "3. Bleu Score & Rouge Score", "4. Benchmarks", "5. Arena"]),
    ("帮我梳理一下讲 latency 和 throughput 区别的那篇笔记", "02-第二章-部署与推理/大模型的latency（延迟）和throughput（吞吐量）有什么区别.md", ["1. 导入", "2. KV Cache", "3. Prefilling & Decoding", "4. Latency VS Throughput", "5. Navie batching", "6. Continuous batching"]),
    ("What does my note FlashAttentionv2相比于v1有哪些更新 say? Summarize it.", "01-第一章-预训练/FlashAttentionv2相比于v1有哪些更新？.md", ["1. FlashAttention v1", "2. FlashAttention v2的更新", "3. 第一个更新详解", "4. 第二个更新详解", "5. 第三个更新详解"]),
    ("总结一下《大模型复读机问题》这篇笔记", "08-第八章-大模型企业落地/大模型复读机问题.md", ["具体表现", "解决策略：", "问题的本质-智能涌现失败"]),
    ("概括一下《向量数据库拥抱大模型》这篇文章", "07-第七章-Agent/向量数据库拥抱大模型.md", ["1. 为什么需要向量数据库", "2. 什么是向量", "3. 什么是语义搜索", "4. 向量数据的应用-RAG技术", "4. 向量数据库比较", "5. Long Context vs. RAG"]),
]
for i, (q, f, secs) in enumerate(dev_whole, 1):
    out.append({"id": f"h-dev-w{i:02d}", "corpus": "dev", "kind": "whole_note", "question": q, "note": f, "sections": secs})
for i, (q, f, heads) in enumerate(md_whole, 1):
    out.append({"id": f"h-md-w{i:02d}", "corpus": "md", "kind": "whole_note", "question": q, "note": f,
                "sections": md_sections(f, heads)})

# --- which-notes: gold = every note whose text holds the topic's term (grep; Latin terms as whole words) ---
def holders(root, pattern):
    rx = re.compile(rf"(?<![A-Za-z])(?:{pattern})(?![A-Za-z])")
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix in (".md", ".txt")
                  and p.name not in ("README.md", "SOURCE.md") and rx.search(p.read_text(encoding="utf-8", errors="replace")))
dev_which = [
    ("哪些笔记提到了 LoRA？", "LoRA"), ("哪些笔记讲到了 P-tuning？", "P-tuning"), ("我哪些笔记里写过混合精度训练？", "混合精度"),
    ("Which notes talk about adapter tuning?", "Adapter"), ("哪些笔记说到了 PPO？", "PPO"), ("梯度裁剪在哪些笔记里出现过？", "梯度裁剪"),
    ("哪些笔记讲了模型量化？", "量化"), ("Which of my notes mention prefix tuning?", "Prefix"), ("哪些笔记里有知识蒸馏的内容？", "蒸馏"),
    ("哪些笔记提到了分布式训练？", "分布式"),
]
md_which = [
    ("哪些笔记提到了 PagedAttention？", "PagedAttention"), ("哪些笔记讲过旋转位置编码 RoPE？", "RoPE"),
    ("哪些笔记提到了 MoE？", "MoE"), ("Which notes mention FlashAttention?", "FlashAttention"),
    ("哪些笔记讲到了 QLoRA？", "QLoRA"), ("哪些笔记里提到了 SwiGLU？", "SwiGLU"), ("哪些笔记提到了 RLHF？", "RLHF"),
    ("哪些笔记说到了 Ollama？", "Ollama"), ("Which notes discuss text-to-SQL?", "NL2SQL|Text-2-SQL|Text2SQL|Text-to-SQL"),
    ("哪些笔记讲到了大模型幻觉？", "幻觉"),
]
for corpus, root, items in (("dev", DEV, dev_which), ("md", MD, md_which)):
    for i, (q, term) in enumerate(items, 1):
        out.append({"id": f"h-{corpus}-n{i:02d}", "corpus": corpus, "kind": "which_notes", "question": q, "term": term,
                    "notes": holders(root, term)})
Path(sys.argv[1]).write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in out), encoding="utf-8")
print(len(out), {k: sum(o["kind"] == k for o in out) for k in ("scoped", "whole_note", "which_notes")})
