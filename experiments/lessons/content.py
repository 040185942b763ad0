"""The hand-written part of the lesson site: one :class:`~experiments.lessons.schema.Week` per study week.

:data:`WEEKS` maps each week of the study plan (1 to 12) to its page's title, goal,
introduction, a note above each of the week's derivations, the key numbers it quotes
from the experiments' ``results.json`` and its exercises, in English and Korean.
:mod:`experiments.lessons.build` renders them with the registry's derivations (as MathML)
and the experiments' figures.

Conventions, checked by ``tests/test_lessons_content.py``:

* prose is an HTML fragment using ``<p>``, ``<em>``, ``<strong>``, ``<code>``,
  ``<ul>``/``<li>`` and ``<a href>`` to another page of the site (``week-07.html``);
  a fragment that does not start with a block tag is one paragraph and holds inline tags
  only; titles and number labels are inline;
* prose states no measured value: a measured value is a :class:`Number` (an experiment's
  name and a dotted path into its ``results.json``), read when the site is built;
* every derivation note belongs to a derivation of the page's own week, every number to
  an experiment of :data:`experiments.weekly.EXPERIMENTS`, and every exercise is checked
  with ``tfd derive`` or ``tfd verify``.
"""

from __future__ import annotations

from experiments.lessons.schema import Exercise, Number, Text, Week

__all__ = ["WEEKS"]


def _t(en: str, ko: str) -> Text:
    """A text in both languages."""
    return Text(en=en, ko=ko)


def _num(experiment: str, path: str, fmt: str, en: str, ko: str) -> Number:
    """A key number: ``path`` in ``<runs>/<experiment>/results.json``, labelled in both languages."""
    return Number(label=_t(en, ko), experiment=experiment, path=path, fmt=fmt)


def _ex(check: str, question: Text, hint: Text) -> Exercise:
    """An exercise whose answer ``check`` (a ``tfd derive`` or ``tfd verify`` command) shows."""
    return Exercise(question=question, check=check, hint=hint)


# ---------------------------------------------------------------------------------------
# Week 1: LLM overview, the language-modelling objective
# ---------------------------------------------------------------------------------------

WEEK_1 = Week(
    number=1,
    title=_t("LLM overview: the language-modelling objective",
             "LLM 개요: 언어 모델링 목표 함수"),
    goal=_t(
        "Write down what a language model is trained to do as one formula, the next-token "
        "cross-entropy, and read its value: <code>log V</code> for a model that knows nothing, 0 for "
        "one that is certain and right, and perplexity as the effective number of choices.",
        "언어 모델이 무엇을 하도록 학습되는지를 하나의 수식, 즉 다음 토큰 교차 엔트로피(cross-entropy)로 "
        "쓰고 그 값을 읽을 수 있습니다. 아무것도 모르는 모델은 <code>log V</code>, 확신을 가지고 맞히는 "
        "모델은 0이며, 퍼플렉서티(perplexity)는 '실질적인 선택지의 개수'입니다."),
    intro=(
        _t("A large language model is, underneath, a function from a sequence of token ids to one "
           "vector of scores per position (the <em>logits</em>), one score for each of the V entries of "
           "its vocabulary. A softmax turns each vector into a probability distribution over the next "
           "token. Everything on the later pages (embeddings, attention, the feed-forward network, "
           "positions, residual connections) is about how that function is built; this page is about "
           "what it is trained to do.",
           "대규모 언어 모델(LLM)은 결국 토큰 id의 시퀀스를 받아 위치마다 하나의 점수 벡터(로짓, "
           "<em>logits</em>)를 내놓는 함수입니다. 점수는 어휘(vocabulary)의 V개 항목마다 하나씩 있고, "
           "소프트맥스(softmax)가 각 벡터를 다음 토큰에 대한 확률 분포로 바꿉니다. 뒤의 주차에서 다루는 "
           "임베딩, 어텐션, 피드포워드 네트워크, 위치 인코딩, 잔차 연결은 모두 이 함수를 <em>어떻게 "
           "만드는가</em>에 관한 이야기이고, 이번 주는 이 함수가 <em>무엇을 하도록 학습되는가</em>에 관한 "
           "이야기입니다."),
        _t("The training signal is the text itself. At every position t the model is scored on the "
           "token that really came next, by its surprise <code>−log p(y_t)</code>; the mean over positions "
           "is the cross-entropy L. A GPT makes all T predictions of a window in one forward pass, "
           "because the causal mask (<a href=\"week-07.html\">week 7</a>) keeps position t from seeing "
           "t + 1: one window of T tokens is T training examples. The gradient of L with respect to the "
           "logits is simply <em>predicted minus observed</em>, <code>softmax(z) − onehot(y)</code>, divided "
           "by T.",
           "학습 신호는 텍스트 자체입니다. 모델은 각 위치 t에서 실제로 다음에 온 토큰으로 평가받고, 그 "
           "'놀람(surprise)'은 <code>−log p(y_t)</code>입니다. 이를 위치에 대해 평균한 것이 교차 엔트로피 "
           "L입니다. GPT는 한 번의 순전파(forward pass)로 윈도우의 T개 예측을 모두 계산합니다. 인과 "
           "마스크(causal mask, <a href=\"week-07.html\">7주차</a>)가 위치 t가 t + 1을 보지 못하게 막기 "
           "때문에, T개 토큰의 윈도우 하나가 곧 T개의 학습 예제가 됩니다. 로짓에 대한 L의 "
           "그래디언트(기울기)는 단순히 <em>예측 − 관측</em>, 즉 <code>softmax(z) − onehot(y)</code>를 T로 "
           "나눈 값입니다."),
        _t("Two levels anchor every loss curve. Uniform logits give <code>L = log V</code> whatever the "
           "targets: that is where an untrained model starts. Predicting each token from its frequency "
           "alone (a <em>unigram</em> model) does better, and a model that uses the context does better "
           "still. Perplexity <code>exp(L)</code> turns a loss back into a count: a perplexity of k means "
           "the model is as unsure as a uniform choice among k tokens. The numbers below place the "
           "character-level GPT that the experiments of this project share on that scale; compute "
           "<code>log V</code> from its V and compare.",
           "모든 손실 곡선에는 기준선이 두 개 있습니다. 로짓이 모두 같으면(균등 분포) 정답이 무엇이든 "
           "<code>L = log V</code>이고, 학습 전 모델은 여기서 출발합니다. 각 토큰을 빈도만으로 예측하는 "
           "<em>유니그램(unigram)</em> 모델은 이보다 낫고, 문맥을 쓰는 모델은 그보다 더 낫습니다. "
           "퍼플렉서티 <code>exp(L)</code>은 손실을 다시 '개수'로 바꿉니다. 퍼플렉서티가 k라면 모델은 "
           "k개의 토큰 중 하나를 균등하게 고르는 것만큼 불확실하다는 뜻입니다. 아래 숫자들은 이 "
           "프로젝트의 실험들이 함께 쓰는 문자 단위 GPT를 이 척도 위에 놓습니다. V로부터 "
           "<code>log V</code>를 직접 계산해 비교해 보세요."),
    ),
    derivation_notes={
        "loss.cross_entropy": _t(
            "Read the statement from the inside out: the logits of position t go through a softmax, the "
            "entry of the true next token is picked, <code>−log</code> of it is the surprise, and the mean "
            "over the T positions is the loss. The steps show that it is never negative, that uniform "
            "logits give exactly <code>log V</code>, and that its gradient is <code>softmax(z) − "
            "onehot(y)</code>: training moves probability towards the observed token and takes it from "
            "every other token in proportion to what that token had.",
            "식은 안쪽에서부터 읽으면 됩니다. 위치 t의 로짓이 소프트맥스를 거치고, 실제 다음 토큰의 항목을 "
            "골라 <code>−log</code>를 취한 것이 그 위치의 놀람이며, T개 위치에 대한 평균이 손실입니다. "
            "단계들은 손실이 절대 음수가 아니라는 것, 로짓이 모두 같으면 정확히 <code>log V</code>가 "
            "된다는 것, 그리고 그래디언트가 <code>softmax(z) − onehot(y)</code>라는 것을 보입니다. 학습은 "
            "관측된 토큰 쪽으로 확률을 옮기고, 다른 토큰들에서는 각자 가지고 있던 확률에 비례해 덜어 "
            "냅니다."),
        "loss.perplexity": _t(
            "Perplexity is the exponential of the mean surprise, which is the geometric mean of "
            "<code>1/p</code> over the positions (step 2). It runs from 1 (always certain and right) "
            "through V (uniform guessing) and beyond (confidently wrong). Compare models by their loss; "
            "quote the perplexity to say how many tokens a model is effectively hesitating between.",
            "퍼플렉서티는 평균 놀람의 지수(exp)이고, 이는 위치별 <code>1/p</code>의 기하평균과 같습니다"
            "(2단계). 값은 1(항상 확신하고 맞힘)부터 V(균등하게 찍기)까지이며, 자신 있게 틀리면 그보다도 "
            "커집니다. 모델끼리의 비교는 손실로 하고, 퍼플렉서티는 모델이 실질적으로 몇 개의 토큰 사이에서 "
            "망설이는지를 말할 때 쓰면 됩니다."),
    },
    numbers=(
        _num("epilogue", "gpt.config.vocab_size", "d",
             "V of the shared GPT (distinct characters)", "공유 GPT의 어휘 크기 V (서로 다른 문자 수)"),
        _num("residual", "runs.0.init.loss", ".3f",
             "loss of an untrained 2-layer GPT (compare with log V)",
             "학습 전 2층 GPT의 손실 (log V와 비교)"),
        _num("residual", "unigram_loss", ".3f",
             "unigram loss: each character predicted from its frequency alone",
             "유니그램 손실: 각 문자를 빈도만으로 예측"),
        _num("epilogue", "gpt.val_loss", ".3f",
             "validation loss of the trained shared GPT", "학습된 공유 GPT의 검증 손실"),
    ),
    exercises=(
        _ex("tfd derive loss.cross_entropy",
            _t("Show that a model whose logits are all equal has loss <code>log V</code> whatever the "
               "text. What is <code>log V</code> for the shared GPT, and how far below it is its "
               "validation loss?",
               "로짓이 모두 같은 모델의 손실은 텍스트와 상관없이 <code>log V</code>임을 보이세요. 공유 "
               "GPT의 <code>log V</code>는 얼마이고, 검증 손실은 그보다 얼마나 낮나요?"),
            _t("The last step: uniform logits (every <code>z_tv = c</code>) give <code>log V</code>. Take V "
               "from the numbers above.",
               "마지막 단계: 균등한 로짓(모든 <code>z_tv = c</code>)은 <code>log V</code>를 줍니다. V는 위의 "
               "숫자에서 가져오세요.")),
        _ex("tfd verify loss.cross_entropy",
            _t("The gradient of the loss with respect to the logits is <code>(softmax(z) − "
               "onehot(y))/T</code>. Why is every entry of it between <code>−1/T</code> and "
               "<code>1/T</code>, however large the logits are? Check that the stated gradient is what "
               "JAX computes.",
               "로짓에 대한 손실의 그래디언트는 <code>(softmax(z) − onehot(y))/T</code>입니다. 로짓이 아무리 "
               "커도 각 항목이 <code>−1/T</code>와 <code>1/T</code> 사이에 있는 이유는 무엇일까요? 명시된 "
               "그래디언트가 JAX가 계산하는 것과 같은지 확인하세요."),
            _t("Softmax entries lie in (0, 1) and one-hot entries are 0 or 1. In the output, the "
               "<code>grad err</code> column compares the stated gradient with <code>jax.grad</code> of the "
               "implementation; the sampled check feeds logits up to 1e4 without overflow.",
               "소프트맥스의 항목은 (0, 1) 안에 있고 원-핫의 항목은 0 또는 1입니다. 출력의 "
               "<code>grad err</code> 열은 명시된 그래디언트와 구현의 <code>jax.grad</code>를 비교하고, 표본 "
               "검사는 1e4까지의 로짓에서도 오버플로가 없는지 봅니다.")),
        _ex("tfd derive loss.perplexity",
            _t("A model gives the true token probability 1/2 at one position and 1/8 at the next. What is "
               "its perplexity over these two positions?",
               "어떤 모델이 한 위치에서는 정답 토큰에 확률 1/2를, 다음 위치에서는 1/8을 줍니다. 이 두 "
               "위치에 대한 퍼플렉서티는 얼마인가요?"),
            _t("Step 2: the exponential of the mean of <code>−log p</code> is the geometric mean of "
               "<code>1/p</code>, here <code>√(2·8) = 4</code>: as unsure as a uniform choice among four "
               "tokens.",
               "2단계: <code>−log p</code> 평균의 지수는 <code>1/p</code>의 기하평균이므로 "
               "<code>√(2·8) = 4</code>입니다. 네 개의 토큰 중 하나를 균등하게 고르는 것만큼 불확실합니다.")),
    ),
    limits=_t(
        "The objective on this page is the pre-training objective of GPT-style models, and the GPTs "
        "of this project are small character-level models trained on Shakespeare. What turns such a "
        "model into a chat assistant (web-scale data, instruction tuning, learning from human "
        "feedback, tool use) is not modelled or verified here.",
        "이 페이지의 목표 함수는 GPT 계열 모델의 사전학습(pre-training) 목표이고, 이 프로젝트의 GPT는 "
        "셰익스피어로 학습한 작은 문자 단위 모델입니다. 이런 모델을 채팅 어시스턴트로 만드는 요소들, 즉 "
        "웹 규모의 데이터, 지시 튜닝(instruction tuning), 사람 피드백으로부터의 학습, 도구 사용은 여기서 "
        "모델링하거나 검증하지 않습니다."),
)


# ---------------------------------------------------------------------------------------
# Week 2: comparing LLMs
# ---------------------------------------------------------------------------------------

WEEK_2 = Week(
    number=2,
    title=_t("Comparing LLMs: parameters and compute from the formulas",
             "LLM 비교: 수식으로 계산한 파라미터 수와 연산량"),
    goal=_t(
        "Count the parameters and training FLOPs of published transformers from their shapes with two "
        "verified formulas, and explain every gap from a published count by a named difference of "
        "architecture.",
        "공개된 트랜스포머의 파라미터 수와 학습 FLOPs를 모양(shape)으로부터 검증된 두 수식으로 계산하고, "
        "공개된 수치와의 차이를 각각 이름 붙은 구조적 차이로 설명할 수 있습니다."),
    intro=(
        _t("Language models are usually compared by benchmark scores, which this project cannot "
           "reproduce. What it can compare exactly is their architecture. A GPT's parameter count is a "
           "polynomial in its shapes: <code>VD</code> for the token table, <code>TD</code> for learned "
           "positions and, per block, <code>4D² + 4D</code> for attention, <code>2DF + F + D</code> for "
           "the FFN and <code>4D</code> for two LayerNorms (<code>gpt.param_count</code>, "
           "<a href=\"week-12.html\">week 12</a>). Its training cost per token is 6 FLOPs per weight in a "
           "matrix product plus the attention products (<code>cost.train_flops</code>).",
           "언어 모델은 보통 벤치마크 점수로 비교하지만, 이 프로젝트는 그것을 재현할 수 없습니다. 대신 "
           "구조(architecture)는 정확히 비교할 수 있습니다. GPT의 파라미터 수는 모양에 대한 다항식입니다. "
           "토큰 테이블에 <code>VD</code>, 학습되는 위치 임베딩에 <code>TD</code>, 그리고 블록마다 어텐션에 "
           "<code>4D² + 4D</code>, FFN에 <code>2DF + F + D</code>, 레이어 정규화(LayerNorm) 두 개에 "
           "<code>4D</code>입니다"
           "(<code>gpt.param_count</code>, <a href=\"week-12.html\">12주차</a>). 토큰당 학습 비용은 행렬 곱에 "
           "들어가는 가중치 하나당 6 FLOPs에 어텐션의 곱셈을 더한 것입니다(<code>cost.train_flops</code>)."),
        _t("The <code>comparison</code> experiment puts GPT-2 (four sizes), GPT-3 175B, LLaMA-2 7B and "
           "70B and BERT-base through these formulas and sets each result beside its published count. "
           "Where they differ, the difference is itself a fact about the architecture, written as a "
           "correction term: LLaMA's SwiGLU FFN has three matrices where the formula counts two, "
           "LLaMA-2 70B's grouped-query attention shares key and value heads between query heads, BERT "
           "adds a token-type table and a pooler. Look at the GPT-2 rows: the formula matches the "
           "released checkpoints, while the GPT-2 paper's own table lists smaller numbers.",
           "<code>comparison</code> 실험은 GPT-2(네 가지 크기), GPT-3 175B, LLaMA-2 7B와 70B, BERT-base를 "
           "이 수식에 넣고, 그 결과를 공개된 수치 옆에 나란히 놓습니다. 둘이 다르면 그 차이 자체가 구조에 "
           "대한 사실이며, 보정 항(correction term)으로 적혀 있습니다. LLaMA의 SwiGLU FFN은 수식이 세는 두 "
           "개 대신 세 개의 행렬을 갖고, LLaMA-2 70B의 그룹 쿼리 어텐션(grouped-query attention)은 여러 쿼리 "
           "헤드가 키·값 헤드를 공유하며, BERT는 토큰 타입 테이블과 풀러(pooler)를 더합니다. GPT-2 행을 "
           "보세요. 수식은 공개된 체크포인트와 맞지만, GPT-2 논문의 표에는 오히려 더 작은 숫자가 적혀 "
           "있습니다."),
        _t("Two patterns to look for. As D grows, the blocks' <code>12LD²</code> dominates and the "
           "embedding matters less. And <code>6N</code> underestimates the training FLOPs most where the "
           "context is long relative to the width: the attention products add about "
           "<code>T/(6D)</code> on top of the weights' <code>6N</code>.",
           "찾아볼 패턴은 두 가지입니다. D가 커질수록 블록의 <code>12LD²</code>가 지배적이 되고 임베딩의 "
           "비중은 줄어듭니다. 그리고 <code>6N</code>은 폭(width)에 비해 문맥 길이가 긴 모델에서 학습 "
           "FLOPs를 가장 크게 과소평가합니다. 어텐션의 곱셈이 가중치의 <code>6N</code> 위에 대략 "
           "<code>T/(6D)</code>만큼을 더하기 때문입니다."),
    ),
    numbers=(
        _num("comparison", "rows.0.formula.parameters", ",",
             "GPT-2 small: parameters by gpt.param_count", "GPT-2 small: gpt.param_count로 센 파라미터 수"),
        _num("comparison", "rows.0.published.1.value", ",",
             "GPT-2 small: the figure in the GPT-2 paper's table 2", "GPT-2 small: GPT-2 논문 표 2의 수치"),
        _num("comparison", "rows.4.difference.formula_relative", "+.2%",
             "GPT-3 175B: formula against the published count", "GPT-3 175B: 공개 수치 대비 수식의 차이"),
        _num("comparison", "rows.5.difference.formula_relative", "+.1%",
             "LLaMA-2 7B: formula without the SwiGLU correction, against the released checkpoint",
             "LLaMA-2 7B: SwiGLU 보정 없이 계산한 수식과 공개 체크포인트의 차이"),
        _num("comparison", "rows.0.corrected.flops_over_6n", ".3f",
             "GPT-2 small: training FLOPs per token divided by 6N", "GPT-2 small: 토큰당 학습 FLOPs ÷ 6N"),
    ),
    exercises=(
        _ex("tfd derive gpt.param_count",
            _t("Show that one GPT block with biases and <code>F = 4D</code> has <code>12D² + 13D</code> "
               "parameters. How many of GPT-2 small's parameters are in its 12 blocks "
               "(<code>D = 768</code>), and where is most of the rest?",
               "바이어스가 있고 <code>F = 4D</code>인 GPT 블록 하나의 파라미터가 <code>12D² + 13D</code>개임을 "
               "보이세요. GPT-2 small(<code>D = 768</code>)의 파라미터 중 12개 블록에 있는 것은 몇 개이고, "
               "나머지의 대부분은 어디에 있나요?"),
            _t("The step with <code>F = 4D</code>: <code>12·(12·768² + 13·768) = 85,054,464</code>. Most of "
               "the rest is the <code>V × D</code> token table (the step on tying the head names its size).",
               "<code>F = 4D</code>인 단계: <code>12·(12·768² + 13·768) = 85,054,464</code>. 나머지의 대부분은 "
               "<code>V × D</code> 토큰 테이블입니다(헤드 공유(tying)에 관한 단계가 그 크기를 알려 줍니다).")),
        _ex("tfd derive multihead.param_count",
            _t("GPT-2 XL has 25 heads and GPT-2 small 12. Why does the number of heads not appear in the "
               "parameter formula?",
               "GPT-2 XL은 헤드가 25개이고 GPT-2 small은 12개입니다. 헤드 수가 파라미터 수식에 나타나지 "
               "않는 이유는 무엇일까요?"),
            _t("Step 2: H heads with <code>D × K</code> blocks and <code>K = D/H</code> add up to the same "
               "<code>D × D</code> matrices.",
               "2단계: <code>K = D/H</code>인 <code>D × K</code> 블록 H개를 모으면 같은 <code>D × D</code> "
               "행렬이 됩니다.")),
        _ex("tfd derive feedforward.param_count",
            _t("The table corrects LLaMA-2 by <code>+LDF</code>. Count a two-matrix FFN and explain why a "
               "SwiGLU FFN, with a third <code>D × F</code> matrix and no biases, adds exactly "
               "<code>DF</code> per layer.",
               "표는 LLaMA-2를 <code>+LDF</code>만큼 보정합니다. 행렬이 두 개인 FFN의 파라미터를 세고, "
               "<code>D × F</code> 행렬이 하나 더 있고 바이어스가 없는 SwiGLU FFN이 왜 층마다 정확히 "
               "<code>DF</code>를 더하는지 설명하세요."),
            _t("Step 1 counts <code>W₁</code>, <code>b₁</code>, <code>W₂</code>, <code>b₂</code>: "
               "<code>2DF + F + D</code>. Without biases (as in LLaMA, which the formula's bias flag "
               "already expresses) that is <code>2DF</code>; a third matrix makes it <code>3DF</code>.",
               "1단계는 <code>W₁</code>, <code>b₁</code>, <code>W₂</code>, <code>b₂</code>를 셉니다: "
               "<code>2DF + F + D</code>. 바이어스가 없으면(LLaMA처럼, 수식의 바이어스 플래그가 이미 이를 "
               "표현합니다) <code>2DF</code>이고, 세 번째 행렬이 더해지면 <code>3DF</code>가 됩니다.")),
    ),
    limits=_t(
        "<p>Closed models such as Claude (and GPT-4) have no published architecture: their layer "
        "counts, widths, vocabularies and parameter counts are not public, so no formula can count "
        "them, and they are not in the table. Anything said about their size is a guess, not a "
        "derivation.</p><p>Nor does this project measure what a comparison of models usually means: "
        "benchmark scores, usable context length, cost per query, safety behaviour. The table compares "
        "shapes, not capabilities.</p>",
        "<p>Claude(그리고 GPT-4) 같은 비공개 모델은 구조가 공개되어 있지 않습니다. 층 수, 폭, 어휘 크기, "
        "파라미터 수가 알려져 있지 않으므로 어떤 수식으로도 셀 수 없고, 그래서 표에 없습니다. 이런 모델의 "
        "크기에 대한 이야기는 추측일 뿐 유도가 아닙니다.</p><p>또한 이 프로젝트는 모델 비교라고 하면 보통 "
        "떠올리는 것들, 즉 벤치마크 점수, 실제로 쓸 수 있는 문맥 길이, 질의당 비용, 안전성 관련 동작을 "
        "측정하지 않습니다. 이 표는 능력이 아니라 모양을 비교합니다.</p>"),
)


# ---------------------------------------------------------------------------------------
# Week 3: prompt injection
# ---------------------------------------------------------------------------------------

WEEK_3 = Week(
    number=3,
    title=_t("Prompt injection: what the equations can and cannot say",
             "프롬프트 인젝션: 수식이 말할 수 있는 것과 없는 것"),
    goal=_t(
        "See from the equations of a decoder why a model cannot tell instructions from data by "
        "construction: one token sequence, one attention over all of it, and nothing that marks a token "
        "as trusted.",
        "디코더의 수식으로부터, 모델이 구조상 지시(instruction)와 데이터를 구별할 수 없는 이유를 "
        "이해합니다. 토큰 시퀀스는 하나이고, 그 전체에 대한 어텐션도 하나이며, 어떤 토큰이 신뢰할 수 있는 "
        "것인지 표시하는 장치는 없습니다."),
    intro=(
        _t("A prompt injection is text inside the data a model is asked to process (a web page, an "
           "e-mail, a retrieved document) that the model then follows as if it were an instruction. This "
           "project has no experiment on attacks or defenses. What it can show, math first, is why the "
           "problem exists at the level of the equations.",
           "프롬프트 인젝션(prompt injection)이란 모델이 처리하도록 주어진 데이터(웹 페이지, 이메일, "
           "검색된 문서) 안에 들어 있는 텍스트를 모델이 마치 지시인 것처럼 따르는 현상입니다. 이 "
           "프로젝트에는 공격이나 방어에 관한 실험이 없습니다. 대신 수식을 먼저 보는 관점에서, 왜 이 문제가 "
           "수식 수준에서 생길 수밖에 없는지를 보일 수 있습니다."),
        _t("Everything a model receives is one sequence of token ids. A system prompt, a user's "
           "question and a retrieved document are joined before tokenisation, embedded by the same table "
           "<code>W_E</code> and given positions by the same scheme (<code>gpt.embedding</code>, "
           "<a href=\"week-12.html\">week 12</a>). In every layer attention computes <code>softmax(QKᵀ/√K, "
           "M)V</code> over all of them alike (<a href=\"week-07.html\">week 7</a>): the weight a token "
           "gets depends on how well its key matches the query, not on where the token came from. In the "
           "equations of this project's GPT there is no input that says which tokens are instructions.",
           "모델이 받는 것은 전부 하나의 토큰 id 시퀀스입니다. 시스템 프롬프트, 사용자의 질문, 검색된 "
           "문서는 토큰화 전에 이어 붙여지고, 같은 테이블 <code>W_E</code>로 임베딩되며, 같은 방식으로 위치를 "
           "받습니다(<code>gpt.embedding</code>, <a href=\"week-12.html\">12주차</a>). 모든 층에서 어텐션은 "
           "이들 전체에 대해 똑같이 <code>softmax(QKᵀ/√K, M)V</code>를 계산합니다"
           "(<a href=\"week-07.html\">7주차</a>). 어떤 토큰이 받는 가중치는 그 토큰의 키가 쿼리와 얼마나 잘 "
           "맞는지에 달려 있을 뿐, 그 토큰이 어디서 왔는지와는 무관합니다. 이 프로젝트 GPT의 수식에는 어떤 "
           "토큰이 지시인지 알려 주는 입력이 없습니다."),
        _t("The causal mask adds one asymmetry, and no protection. Position t sees only positions "
           "s ≤ t, so text placed <em>after</em> the instructions cannot change how the model encoded the "
           "instructions: <code>attention.causal_mask</code> proves it, and the epilogue experiment "
           "measures it on the shared GPT (the numbers below). But the next token is predicted at the "
           "last position, which attends to every earlier token, instructions and injected text "
           "together. Which of them steers the prediction is decided by the trained weights, not by the "
           "architecture.",
           "인과 마스크는 비대칭을 하나 더할 뿐, 보호 장치가 되지는 않습니다. 위치 t는 s ≤ t인 위치만 "
           "보므로, 지시 <em>뒤에</em> 놓인 텍스트는 모델이 지시를 인코딩한 결과를 바꿀 수 없습니다. "
           "<code>attention.causal_mask</code>가 이를 증명하고, epilogue 실험이 공유 GPT에서 이를 "
           "측정합니다(아래 숫자). 그러나 다음 토큰은 마지막 위치에서 예측되고, 그 위치는 지시와 주입된 "
           "텍스트를 가리지 않고 앞의 모든 토큰에 어텐션합니다. 그중 무엇이 예측을 좌우할지는 구조가 아니라 "
           "학습된 가중치가 정합니다."),
        _t("BERT's input has the closest thing in this project to a marker of origin: a token-type row "
           "(segment A or B) added to each position (<code>bert.embedding</code>). It is one more learned "
           "vector in a sum, which training may teach the model to use or to ignore; it is not a barrier "
           "that attention respects.",
           "이 프로젝트에서 '출처 표시'에 가장 가까운 것은 BERT의 입력에 있습니다. 각 위치에 더해지는 토큰 "
           "타입 행(세그먼트 A 또는 B, <code>bert.embedding</code>)입니다. 하지만 이것은 합에 더해지는 학습된 "
           "벡터 하나일 뿐이어서, 학습을 통해 모델이 이를 활용할 수도 무시할 수도 있습니다. 어텐션이 지켜야 "
           "하는 경계가 아닙니다."),
    ),
    numbers=(
        _num("epilogue", "gpt.causality.max_change_earlier", ".3g",
             "GPT: largest change of an earlier output when a later token is replaced",
             "GPT: 뒤의 토큰을 바꿨을 때 앞 위치 출력의 최대 변화"),
        _num("epilogue", "gpt.causality.min_change_same_or_later", ".3g",
             "GPT: smallest change at the replaced position and after",
             "GPT: 바꾼 위치와 그 뒤 위치 출력의 최소 변화"),
        _num("epilogue", "bert.causality.min_change_earlier", ".3g",
             "BERT (bidirectional): smallest change of an earlier output when a later token is replaced",
             "BERT(양방향): 뒤의 토큰을 바꿨을 때 앞 위치 출력의 최소 변화"),
    ),
    exercises=(
        _ex("tfd derive attention.causal_mask",
            _t("Prove that the causal attention output at position t does not depend on any key or value "
               "after t. What does this imply for instructions placed before untrusted text, and what does "
               "it not imply?",
               "인과 어텐션에서 위치 t의 출력이 t 이후의 어떤 키나 값에도 의존하지 않음을 증명하세요. 이것은 "
               "신뢰할 수 없는 텍스트 앞에 놓인 지시에 대해 무엇을 의미하고, 무엇을 의미하지 않나요?"),
            _t("Steps 2 and 3. The encoding of the earlier instructions is fixed; the prediction at the last "
               "position still attends to everything before it, the injected text included.",
               "2단계와 3단계. 앞에 있는 지시의 인코딩은 고정되지만, 마지막 위치의 예측은 주입된 텍스트를 "
               "포함해 그 앞의 모든 것에 여전히 어텐션합니다.")),
        _ex("tfd derive gpt.embedding",
            _t("Show that nothing in a GPT's input marks where a token came from: what distinguishes the "
               "same token at two positions?",
               "GPT의 입력에는 토큰의 출처를 표시하는 것이 없음을 보이세요. 서로 다른 두 위치에 있는 같은 "
               "토큰은 무엇으로 구별되나요?"),
            _t("Step 2: <code>x_0 − x_2 = W_P[0] − W_P[2]</code>, whatever the token. Only the token id and "
               "its position enter the model.",
               "2단계: 토큰이 무엇이든 <code>x_0 − x_2 = W_P[0] − W_P[2]</code>입니다. 모델에 들어가는 것은 "
               "토큰 id와 위치뿐입니다.")),
        _ex("tfd derive bert.embedding",
            _t("BERT adds a token-type row for segment A or B. Is it a trust boundary?",
               "BERT는 세그먼트 A 또는 B를 나타내는 토큰 타입 행을 더합니다. 이것이 신뢰 경계일까요?"),
            _t("Step 1: it is one more learned row in the sum before the LayerNorm; step 2: for a single "
               "segment it folds into the position table. A vector the model may learn to use, not a wall.",
               "1단계: LayerNorm 앞의 합에 더해지는 학습된 행 하나일 뿐입니다. 2단계: 세그먼트가 하나뿐이면 "
               "위치 테이블에 흡수됩니다. 모델이 활용하도록 학습될 수 있는 벡터이지, 벽이 아닙니다.")),
    ),
    limits=_t(
        "<p>Defenses are out of scope: instruction hierarchies taught in fine-tuning, delimiters and "
        "formatting conventions, filtering of inputs, separate models that check outputs, limits on the "
        "tools a model may call. None of them is an equation this project can state or verify, and none "
        "changes the fact above: inside the model, instructions and data are tokens in the same "
        "attention.</p><p>Nor does the project train or test a model that follows instructions: its "
        "GPTs continue Shakespeare, so it cannot measure how often an injection succeeds.</p>",
        "<p>방어 기법은 다루지 않습니다. 파인튜닝으로 가르치는 지시 위계(instruction hierarchy), 구분자와 "
        "서식 규칙, 입력 필터링, 출력을 검사하는 별도의 모델, 모델이 호출할 수 있는 도구의 제한 등은 이 "
        "프로젝트가 수식으로 쓰거나 검증할 수 있는 대상이 아니며, 어느 것도 위의 사실, 즉 모델 내부에서 "
        "지시와 데이터는 같은 어텐션 안의 토큰이라는 사실을 바꾸지 못합니다.</p><p>또한 이 프로젝트는 "
        "지시를 따르는 모델을 학습하거나 시험하지 않습니다. 이 프로젝트의 GPT는 셰익스피어를 이어 쓸 뿐이므로, "
        "인젝션이 얼마나 자주 성공하는지는 측정할 수 없습니다.</p>"),
)


# ---------------------------------------------------------------------------------------
# Week 4: tokenization
# ---------------------------------------------------------------------------------------

WEEK_4 = Week(
    number=4,
    title=_t("Tokenization: how text becomes token ids", "토큰화: 텍스트가 토큰 id가 되는 과정"),
    goal=_t(
        "Explain byte-level BPE (start from the 256 byte values, add one token per merge), measure what a "
        "larger vocabulary buys in tokens per character, and see why Korean costs more tokens than "
        "English under tokenizers trained mostly on English.",
        "바이트 수준 BPE(256개의 바이트 값에서 시작해 병합(merge)마다 토큰을 하나씩 추가)를 설명하고, 어휘를 "
        "키우면 문자당 토큰 수가 얼마나 줄어드는지 측정하며, 주로 영어로 학습된 토크나이저에서 한국어가 "
        "영어보다 토큰을 더 많이 쓰는 이유를 이해합니다."),
    intro=(
        _t("A model never sees characters. It sees integers in <code>[0, V)</code>, one per token, and "
           "each id selects a row of the embedding table <code>W_E</code> (the lookup in "
           "<code>gpt.embedding</code> is a product with a one-hot matrix). The tokenizer decides what a "
           "token is, and so how many tokens a text costs; that fixes the cost of everything after it: "
           "attention's <code>T × T</code> scores, how much text fits in the context window, the price of "
           "an API call.",
           "모델은 문자를 보지 않습니다. 모델이 보는 것은 토큰마다 하나씩인 <code>[0, V)</code> 범위의 "
           "정수이고, 각 id는 임베딩 테이블 <code>W_E</code>의 한 행을 고릅니다(<code>gpt.embedding</code>의 "
           "조회는 원-핫 행렬과의 곱입니다). 무엇이 토큰인지, 그래서 텍스트 하나가 토큰 몇 개가 되는지는 "
           "토크나이저가 정하고, 이것이 그 뒤의 모든 비용을 결정합니다. 어텐션의 <code>T × T</code> 점수, "
           "문맥 창(context window)에 들어가는 텍스트의 양, API 호출 비용이 모두 여기에 달려 있습니다."),
        _t("This project has three tokenizers. The shared GPT is character-level "
           "(<code>CharTokenizer</code>: one id per distinct character of its corpus). "
           "<code>BytePairTokenizer</code> is byte-level BPE: it starts from the 256 byte values, so any "
           "UTF-8 text can be encoded, and learns merges from a corpus, the most frequent adjacent pair "
           "first; each merge adds one id, <code>V = 256 + merges</code>. <code>GPT2Tokenizer</code> reads "
           "GPT-2's released vocabulary and merges from local files and encodes as GPT-2 does.",
           "이 프로젝트에는 토크나이저가 세 개 있습니다. 공유 GPT는 문자 단위입니다(<code>CharTokenizer</code>: "
           "말뭉치에 나오는 서로 다른 문자마다 id 하나). <code>BytePairTokenizer</code>는 바이트 수준 "
           "BPE(byte-pair encoding)입니다. 256개의 바이트 값에서 시작하므로 어떤 UTF-8 텍스트든 인코딩할 수 "
           "있고, 말뭉치에서 가장 자주 나오는 인접 쌍부터 병합을 학습합니다. 병합 하나가 id 하나를 더하므로 "
           "<code>V = 256 + 병합 수</code>입니다. <code>GPT2Tokenizer</code>는 GPT-2가 공개한 어휘와 병합 "
           "목록을 로컬 파일에서 읽어 GPT-2와 똑같이 인코딩합니다."),
        _t("The <code>tokens</code> experiment trains a BPE on English Shakespeare and measures text it "
           "was not trained on. Look at two things. How tokens per byte fall as merges are added: frequent "
           "English chunks become single tokens. And what happens to Korean: a Hangul syllable is three "
           "UTF-8 bytes, and a tokenizer that never saw Hangul has no merges for it, so it spends about "
           "one token per byte. GPT-2's tokenizer was trained on English-dominated web text; compare its "
           "tokens per character for the two languages below. Tokens per character across scripts also "
           "compares the scripts (a syllable carries more than a Latin letter), which is why the "
           "experiment also splits one parallel sentence, Article 1(1) of the Korean Constitution, in "
           "both languages.",
           "<code>tokens</code> 실험은 영어 셰익스피어로 BPE를 학습하고, 학습에 쓰지 않은 텍스트에서 "
           "측정합니다. 두 가지를 보세요. 첫째, 병합이 늘어날수록 바이트당 토큰 수가 어떻게 줄어드는지: 자주 "
           "나오는 영어 조각이 하나의 토큰이 됩니다. 둘째, 한국어에서 무슨 일이 일어나는지: 한글 한 음절은 "
           "UTF-8로 3바이트이고, 한글을 본 적 없는 토크나이저에는 한글에 대한 병합이 없으므로 거의 바이트마다 "
           "토큰 하나를 씁니다. GPT-2의 토크나이저는 영어가 대부분인 웹 텍스트로 학습되었습니다. 아래에서 두 "
           "언어의 문자당 토큰 수를 비교해 보세요. 서로 다른 문자 체계 사이의 문자당 토큰 수는 문자 체계 "
           "자체의 차이(한 음절은 라틴 문자 하나보다 많은 정보를 담습니다)도 함께 비교하는 것이므로, 실험은 "
           "같은 내용의 문장 하나, 대한민국 헌법 제1조 제1항을 두 언어로 나눠 보여 주기도 합니다."),
    ),
    numbers=(
        _num("tokens", "gpt2.english.tokens_per_char", ".3f",
             "GPT-2 tokenizer: tokens per character, held-out English",
             "GPT-2 토크나이저: 문자당 토큰 수, 학습에 쓰지 않은 영어"),
        _num("tokens", "gpt2.korean.tokens_per_char", ".3f",
             "GPT-2 tokenizer: tokens per character, Korean", "GPT-2 토크나이저: 문자당 토큰 수, 한국어"),
        _num("tokens", "examples.korean.gpt2.n_tokens", "d",
             "GPT-2 tokens for “대한민국은 민주공화국이다.”", "“대한민국은 민주공화국이다.”의 GPT-2 토큰 수"),
        _num("tokens", "examples.english.gpt2.n_tokens", "d",
             "GPT-2 tokens for its official English translation", "공식 영어 번역문의 GPT-2 토큰 수"),
    ),
    exercises=(
        _ex("tfd derive gpt.embedding",
            _t("Show that looking up a token id is a product with a one-hot row. What, then, does an id "
               "tell the model about its token?",
               "토큰 id를 조회하는 것이 원-핫 행과의 곱임을 보이세요. 그렇다면 id는 모델에게 그 토큰에 대해 "
               "무엇을 알려 주나요?"),
            _t("Step 1: for tokens (2, 0, 2), <code>onehot(tokens) W</code> is rows 2, 0, 2 of W. The id only "
               "chooses a row; what a token means lives in its learned row.",
               "1단계: 토큰 (2, 0, 2)에 대해 <code>onehot(tokens) W</code>는 W의 2, 0, 2번째 행입니다. id는 행을 "
               "고를 뿐이고, 토큰의 의미는 학습된 그 행에 담깁니다.")),
        _ex("tfd derive gpt.param_count",
            _t("A larger vocabulary costs parameters. How many per vocabulary entry, with a tied head and "
               "with an untied one?",
               "어휘가 커지면 파라미터가 늘어납니다. 헤드를 임베딩과 공유(tie)할 때와 공유하지 않을 때, 어휘 "
               "항목 하나당 몇 개인가요?"),
            _t("The model's parts: <code>W_E</code> is <code>[V, D]</code>, and an untied head adds "
               "<code>W_U</code> <code>[D, V]</code>. D per entry when tied, 2D when untied.",
               "모델의 구성 요소: <code>W_E</code>는 <code>[V, D]</code>이고, 공유하지 않는 헤드는 "
               "<code>W_U</code> <code>[D, V]</code>를 더합니다. 공유하면 항목당 D개, 공유하지 않으면 2D개입니다.")),
        _ex("tfd derive cost.train_flops",
            _t("A tokenizer with longer tokens turns a text into fewer positions. Which part of the "
               "training cost per token depends on the number of positions T in a window?",
               "토큰이 긴 토크나이저는 같은 텍스트를 더 적은 위치로 바꿉니다. 토큰당 학습 비용 중 윈도우의 "
               "위치 수 T에 의존하는 부분은 무엇인가요?"),
            _t("Step 2: attention's <code>QKᵀ</code> and <code>PV</code> cost <code>4TD</code> per token "
               "forward (<code>12LTD</code> for training); the weight products cost the same per token "
               "whatever T.",
               "2단계: 어텐션의 <code>QKᵀ</code>와 <code>PV</code>는 토큰당 순전파에서 <code>4TD</code>"
               "(학습 전체로는 <code>12LTD</code>)가 듭니다. 가중치와의 곱셈은 T와 상관없이 토큰당 비용이 "
               "같습니다.")),
    ),
    limits=_t(
        "There is no equation of tokenisation in the registry: a tokenizer is an algorithm, tested by "
        "round trips and by equality with GPT-2's reference encoding, not derived. The project "
        "implements characters and byte-level BPE; BERT's WordPiece vocabulary is read from MiniLM's "
        "<code>tokenizer.json</code> with the <code>tokenizers</code> library, and no tokenizer here is "
        "trained on Korean. The experiment measures what tokenisation costs in tokens, not what it does "
        "to a model's quality.",
        "레지스트리에는 토큰화의 수식이 없습니다. 토크나이저는 유도하는 대상이 아니라 알고리즘이며, "
        "왕복(인코딩 후 디코딩) 검사와 GPT-2 기준 인코딩과의 일치로 시험합니다. 이 프로젝트는 문자 단위와 "
        "바이트 수준 BPE를 구현합니다. BERT의 WordPiece 어휘는 MiniLM의 <code>tokenizer.json</code>을 "
        "<code>tokenizers</code> 라이브러리로 읽어 쓰며, 한국어로 학습한 토크나이저는 없습니다. 실험은 토큰화의 "
        "비용을 토큰 수로 측정할 뿐, 토큰화가 모델의 품질에 미치는 영향은 측정하지 않습니다."),
)


# ---------------------------------------------------------------------------------------
# Week 5: embeddings and cosine similarity
# ---------------------------------------------------------------------------------------

WEEK_5 = Week(
    number=5,
    title=_t("Embeddings and cosine similarity", "임베딩과 코사인 유사도"),
    goal=_t(
        "Compute the cosine similarity of two embedding vectors, prove that it lies in [−1, 1] and ignores "
        "length, and read the similarity matrices of a pretrained sentence encoder and of the shared "
        "GPT's characters with the right amount of scepticism.",
        "두 임베딩 벡터의 코사인 유사도(cosine similarity)를 계산하고, 그 값이 [−1, 1] 안에 있으며 길이와 "
        "무관함을 증명하고, 사전학습된 문장 인코더와 공유 GPT의 문자 임베딩에서 얻은 유사도 행렬을 적절히 "
        "비판적으로 읽을 수 있습니다."),
    intro=(
        _t("An embedding is a row of a learned table: token id v picks row v of <code>W_E</code>, a vector "
           "of D numbers. Nothing in the table is labelled. Whatever structure it has was put there by "
           "training, because tokens that behave alike under the training objective are pulled towards "
           "similar rows. To find that structure we need a measure of similarity.",
           "임베딩(embedding)은 학습된 테이블의 한 행입니다. 토큰 id v는 <code>W_E</code>의 v번째 행, 즉 D개의 "
           "숫자로 이루어진 벡터를 고릅니다. 테이블의 어떤 값에도 이름표는 없습니다. 테이블에 구조가 있다면 "
           "그것은 학습이 만든 것입니다. 학습 목표에서 비슷하게 행동하는 토큰들이 비슷한 행 쪽으로 당겨지기 "
           "때문입니다. 그 구조를 찾으려면 유사도를 재는 척도가 필요합니다."),
        _t("The dot product <code>a·b</code> grows with both lengths and with alignment. Cosine similarity "
           "divides the lengths out, <code>a·b/(‖a‖‖b‖)</code>, leaving the cosine of the angle between "
           "the vectors: 1 for the same direction, 0 for orthogonal ones, −1 for opposite ones. For vectors "
           "already scaled to unit length the two are the same number; that is why sentence encoders "
           "normalise their output, and a search over many sentences becomes one matrix product.",
           "내적(dot product) <code>a·b</code>는 두 벡터의 길이가 길수록, 방향이 잘 맞을수록 커집니다. 코사인 "
           "유사도는 길이를 나눠 없앤 <code>a·b/(‖a‖‖b‖)</code>로, 두 벡터 사이 각의 코사인만 남깁니다. 같은 "
           "방향이면 1, 직교하면 0, 반대 방향이면 −1입니다. 이미 길이가 1로 맞춰진 벡터라면 둘은 같은 값이 "
           "됩니다. 그래서 문장 인코더는 출력을 정규화하고, 많은 문장에 대한 검색이 행렬 곱 한 번이 됩니다."),
        _t("The <code>embeddings</code> experiment looks at two models. all-MiniLM-L6-v2, a six-layer BERT "
           "loaded from its published weights, seen two ways: its sentence embedding (the whole encoder, "
           "mean pooling over the real tokens, L2 normalisation) and its static input table. And the "
           "shared character-level GPT, whose rows are characters, beside an untrained table drawn the "
           "same way as a control. Look at whether paraphrases score higher than unrelated sentences, "
           "whether the word groups form blocks on the diagonal, and whether the trained GPT's vowels "
           "cluster where the untrained table's do not.",
           "<code>embeddings</code> 실험은 두 모델을 봅니다. 하나는 공개된 가중치를 불러온 6층 BERT인 "
           "all-MiniLM-L6-v2로, 두 가지 방식으로 봅니다. 문장 임베딩(인코더 전체, 실제 토큰에 대한 평균 "
           "풀링, L2 정규화)과 정적인 입력 임베딩 테이블입니다. 다른 하나는 행이 문자인 공유 문자 단위 "
           "GPT이고, 같은 방식으로 뽑은 학습 전 테이블을 대조군으로 옆에 둡니다. 패러프레이즈(paraphrase) "
           "쌍이 무관한 문장 쌍보다 높은 점수를 받는지, 단어 그룹이 대각선 위에 블록을 이루는지, 학습된 "
           "GPT의 모음들이 학습 전 테이블과 달리 서로 모이는지를 보세요."),
        _t("Analogies (<code>king − man + woman ≈ queen</code>) need care. The usual evaluation excludes "
           "a, b and c from the candidates; the experiment reports the result with and without that "
           "exclusion, and against simply taking the nearest neighbour of c. Compare the two counts "
           "below: when the vector nearest to <code>a − b + c</code> is often one of its own inputs, the "
           "exclusion does part of the work.",
           "유추(analogy, <code>king − man + woman ≈ queen</code>)는 조심해서 읽어야 합니다. 보통의 평가는 "
           "후보에서 a, b, c를 제외합니다. 실험은 이 제외를 했을 때와 하지 않았을 때의 결과를 모두 보고하고, "
           "단순히 c의 최근접 이웃을 고르는 기준선과도 비교합니다. 아래의 두 개수를 비교해 보세요. "
           "<code>a − b + c</code>에 가장 가까운 벡터가 입력 자신인 경우가 많다면, 정답을 맞힌 공의 일부는 "
           "제외 규칙의 몫입니다."),
    ),
    derivation_notes={
        "similarity.dot": _t(
            "The dot product is the basic operation of this whole course: attention scores "
            "(<a href=\"week-06.html\">week 6</a>) are dot products, and every matrix product is a table of "
            "them. The steps prove what makes it a measure of similarity: it is symmetric, linear in each "
            "argument, and bounded by <code>|a·b| ≤ ‖a‖‖b‖</code> (Cauchy–Schwarz), because Lagrange's "
            "identity writes the gap as a sum of squares.",
            "내적은 이 과정 전체의 기본 연산입니다. 어텐션 점수(<a href=\"week-06.html\">6주차</a>)가 내적이고, "
            "모든 행렬 곱은 내적들의 표입니다. 단계들은 내적이 유사도의 척도가 되는 성질을 증명합니다. 대칭이고, "
            "각 인자에 대해 선형이며, 라그랑주 항등식(Lagrange's identity)이 그 차이를 제곱합으로 쓰기 때문에 "
            "<code>|a·b| ≤ ‖a‖‖b‖</code>(코시–슈바르츠 부등식)로 유계입니다."),
        "similarity.cosine": _t(
            "Cosine similarity is the dot product of the two directions. The steps prove the bound "
            "<code>−1 ≤ cos ≤ 1</code> (again a sum of squares), that positive scalings change nothing, "
            "and the law of cosines: for unit vectors <code>‖a − b‖² = 2 − 2cos(a, b)</code>, so ranking "
            "by cosine and ranking by Euclidean distance agree. The last steps derive the gradient and show "
            "it is orthogonal to a: stretching a along itself cannot change a cosine.",
            "코사인 유사도는 두 방향의 내적입니다. 단계들은 <code>−1 ≤ cos ≤ 1</code>(역시 제곱합 논증), "
            "양수배로 늘려도 값이 변하지 않는다는 것, 그리고 코사인 법칙을 증명합니다. 단위 벡터에서는 "
            "<code>‖a − b‖² = 2 − 2cos(a, b)</code>이므로 코사인으로 순위를 매기든 유클리드 거리로 매기든 "
            "같습니다. 마지막 단계들은 그래디언트를 유도하고 그것이 a와 직교함을 보입니다. a를 그 방향으로 "
            "늘이는 것으로는 코사인이 바뀌지 않기 때문입니다."),
        "bert.mean_pooling": _t(
            "A sentence encoder has one vector per token and needs one per sentence. MiniLM averages the "
            "vectors of the real positions (the mask m is 1 for real tokens, 0 for padding), which is why "
            "padding a sentence to the length of a batch changes nothing (step 2).",
            "문장 인코더는 토큰마다 벡터가 하나씩 있지만 문장마다 하나의 벡터가 필요합니다. MiniLM은 실제 "
            "위치들의 벡터를 평균합니다(마스크 m은 실제 토큰에서 1, 패딩에서 0). 그래서 배치 길이에 맞춰 "
            "문장에 패딩을 붙여도 결과가 바뀌지 않습니다(2단계)."),
        "bert.normalize": _t(
            "Dividing by the length puts every sentence on the unit sphere, and the dot product of two such "
            "embeddings is then their cosine similarity (step 3). The floor ε keeps a zero vector at zero "
            "instead of producing NaN.",
            "길이로 나누면 모든 문장이 단위 구 위에 놓이고, 그러면 두 임베딩의 내적이 곧 코사인 유사도가 "
            "됩니다(3단계). 하한 ε는 영벡터가 NaN이 되지 않고 0으로 남게 합니다."),
    },
    numbers=(
        _num("embeddings", "minilm.sentences.means.paraphrase", ".3f",
             "MiniLM: mean cosine of paraphrase pairs", "MiniLM: 패러프레이즈 쌍의 평균 코사인"),
        _num("embeddings", "minilm.sentences.means.different_topic", ".3f",
             "MiniLM: mean cosine of sentences on different topics", "MiniLM: 주제가 다른 문장 쌍의 평균 코사인"),
        _num("embeddings", "minilm.analogies.sentence.summary.analogies", "d",
             "analogies tried (hand-picked)", "시도한 유추 문제 수 (직접 고른 예)"),
        _num("embeddings", "minilm.analogies.sentence.summary.solved_excluding_inputs", "d",
             "solved with a, b and c excluded (sentence embeddings)", "a, b, c를 제외했을 때 맞힌 수 (문장 임베딩)"),
        _num("embeddings", "minilm.analogies.sentence.summary.solved_including_inputs", "d",
             "solved with a, b and c allowed as answers", "a, b, c도 답이 될 수 있을 때 맞힌 수"),
    ),
    exercises=(
        _ex("tfd derive similarity.cosine",
            _t("Prove that <code>−1 ≤ cos(a, b) ≤ 1</code> for any non-zero a and b.",
               "영벡터가 아닌 임의의 a, b에 대해 <code>−1 ≤ cos(a, b) ≤ 1</code>임을 증명하세요."),
            _t("Step 1: <code>1 − cos²</code> is a sum of squares divided by a positive number.",
               "1단계: <code>1 − cos²</code>은 제곱합을 양수로 나눈 것입니다.")),
        _ex("tfd derive similarity.cosine",
            _t("Show that for unit vectors, ranking neighbours by cosine similarity and by Euclidean distance "
               "gives the same order.",
               "단위 벡터에서는 코사인 유사도로 이웃의 순위를 매기든 유클리드 거리로 매기든 순서가 같음을 "
               "보이세요."),
            _t("The unit-vector step: <code>‖a − b‖² = 2 − 2cos(a, b)</code>, a decreasing function of the "
               "cosine.",
               "단위 벡터에 관한 단계: <code>‖a − b‖² = 2 − 2cos(a, b)</code>는 코사인의 감소함수입니다.")),
        _ex("tfd verify bert.normalize",
            _t("Why is the dot product of two MiniLM sentence embeddings the cosine similarity of the pooled "
               "vectors? Check the statement numerically as well.",
               "두 MiniLM 문장 임베딩의 내적이 풀링된 벡터들의 코사인 유사도가 되는 이유는 무엇일까요? 수치로도 "
               "확인하세요."),
            _t("All steps proved (the last is exactly this identity), the numeric error within 1e-5, and the "
               "sampled check of unit length.",
               "모든 단계가 증명되고(마지막 단계가 바로 이 항등식입니다), 수치 오차가 1e-5 이내이며, 길이가 1인지 "
               "확인하는 표본 검사를 통과하는지 보세요.")),
    ),
    limits=_t(
        "The analogies are a handful of hand-picked examples over a small vocabulary, not a standard "
        "benchmark, and all-MiniLM-L6-v2 was trained to place paraphrases together, not to make "
        "relations parallel. Cosine similarity of its embeddings measures what it was trained to put "
        "close, not meaning in general.",
        "유추 문제는 작은 어휘 위에서 직접 고른 몇 개의 예일 뿐 표준 벤치마크가 아니며, all-MiniLM-L6-v2는 "
        "관계를 평행하게 만들도록이 아니라 패러프레이즈를 가깝게 놓도록 학습되었습니다. 이 모델 임베딩의 "
        "코사인 유사도는 모델이 가깝게 놓도록 학습된 것을 재는 것이지, 의미 일반을 재는 것이 아닙니다."),
)


# ---------------------------------------------------------------------------------------
# Week 6: attention as similarity
# ---------------------------------------------------------------------------------------

WEEK_6 = Week(
    number=6,
    title=_t("Self-attention as similarity", "유사도로 보는 셀프 어텐션"),
    goal=_t(
        "Build attention weights from vector similarities: the score matrix <code>QKᵀ</code> of dot "
        "products between queries and keys, and a row-wise softmax that turns each row into positive "
        "weights that sum to 1.",
        "벡터 유사도로부터 어텐션 가중치를 만듭니다. 쿼리와 키 사이 내적들의 점수 행렬 <code>QKᵀ</code>를 "
        "구하고, 행마다 소프트맥스를 적용해 각 행을 합이 1인 양의 가중치로 바꿉니다."),
    intro=(
        _t("In self-attention every position asks a question of every position it may see. Each "
           "position's vector is projected three ways: a <em>query</em> <code>q_t</code> (what this "
           "position is looking for), a <em>key</em> <code>k_s</code> (what that position can be found by) "
           "and a <em>value</em> <code>v_s</code> (what it passes on). In this project's pre-LN GPT the "
           "projections are applied to the normalised stream, <code>Q = LN₁(x) W_Q + b_Q</code> and "
           "likewise for K and V. The score of query t for key s is their dot product, the similarity of "
           "<a href=\"week-05.html\">week 5</a> without the normalisation; all of them at once are the "
           "matrix <code>QKᵀ</code>.",
           "셀프 어텐션(self-attention)에서는 모든 위치가 자신이 볼 수 있는 모든 위치에 질문을 던집니다. 각 "
           "위치의 벡터는 세 가지로 사영(projection)됩니다. <em>쿼리(query)</em> <code>q_t</code>(이 위치가 "
           "찾는 것), <em>키(key)</em> <code>k_s</code>(저 위치가 무엇으로 찾아지는지), <em>값(value)</em> "
           "<code>v_s</code>(저 위치가 전달하는 것)입니다. 이 프로젝트의 pre-LN GPT에서는 정규화된 스트림에 "
           "사영을 적용합니다: <code>Q = LN₁(x) W_Q + b_Q</code>, K와 V도 마찬가지입니다. 쿼리 t의 키 s에 대한 "
           "점수는 둘의 내적, 즉 <a href=\"week-05.html\">5주차</a>의 유사도에서 정규화를 뺀 것이고, 이를 "
           "한꺼번에 모은 것이 행렬 <code>QKᵀ</code>입니다."),
        _t("Scores are not weights yet: they can be negative and their sum means nothing. The softmax turns "
           "each row into a probability distribution: exponentiate, then divide by the row sum. Two "
           "properties matter for everything that follows. Adding the same number to every score of a "
           "row changes nothing (shift invariance), so only the differences between scores count. And a "
           "temperature τ, <code>softmax(x/τ)</code>, moves between the uniform distribution (τ → ∞) and "
           "the one-hot argmax (τ → 0).",
           "점수는 아직 가중치가 아닙니다. 음수일 수도 있고, 합에도 아무 의미가 없습니다. 소프트맥스는 각 행을 "
           "확률 분포로 바꿉니다. 지수를 취한 뒤 행의 합으로 나눕니다. 이후 모든 내용에 중요한 성질이 두 가지 "
           "있습니다. 한 행의 모든 점수에 같은 수를 더해도 결과는 변하지 않습니다(이동 불변성, shift "
           "invariance). 따라서 점수들 사이의 차이만 의미가 있습니다. 그리고 온도(temperature) τ를 넣은 "
           "<code>softmax(x/τ)</code>는 균등 분포(τ → ∞)와 원-핫 argmax(τ → 0) 사이를 오갑니다."),
        _t("The <code>attention</code> experiment opens the shared trained GPT and recomputes, from its "
           "own parameters, the scores and weights of every head on a line of Shakespeare; the block "
           "rebuilt from those weights is checked against the block's own output. In the score heatmaps, "
           "look for stripes that are constant along a row: by shift invariance the softmax ignores them. "
           "In the weight heatmaps, look for heads that attend to the previous character, to the start of "
           "a word, or spread out. The entropy curve multiplies the scores by a factor c, which is the "
           "softmax at temperature 1/c.",
           "<code>attention</code> 실험은 학습된 공유 GPT를 열어, 그 모델 자신의 파라미터로 셰익스피어 한 "
           "줄에 대한 모든 헤드의 점수와 가중치를 다시 계산합니다. 이 가중치로 다시 조립한 블록이 원래 블록의 "
           "출력과 같은지도 검사합니다. 점수 히트맵에서는 한 행을 따라 일정한 줄무늬를 찾아보세요. 이동 "
           "불변성 때문에 소프트맥스는 그런 부분을 무시합니다. 가중치 히트맵에서는 바로 앞 문자에 어텐션하는 "
           "헤드, 단어의 시작에 어텐션하는 헤드, 넓게 퍼진 헤드를 찾아보세요. 엔트로피 곡선은 점수에 인수 c를 "
           "곱한 것으로, 온도 1/c의 소프트맥스와 같습니다."),
    ),
    derivation_notes={
        "attention.scores": _t(
            "Entry (t, s) of <code>QKᵀ</code> is the dot product of query row t and key row s (step 1): "
            "the whole matrix is T × S similarities computed in one matrix product. Step 2 says the scores "
            "are linear in each query: doubling a query doubles its row of scores. That matters next week, "
            "when the size of the scores decides how sharp the softmax is.",
            "<code>QKᵀ</code>의 (t, s) 항목은 쿼리 행 t와 키 행 s의 내적입니다(1단계). 행렬 전체는 행렬 곱 한 "
            "번으로 계산한 T × S개의 유사도입니다. 2단계는 점수가 각 쿼리에 대해 선형이라는 것, 즉 쿼리를 두 "
            "배로 하면 그 행의 점수도 두 배가 된다는 것입니다. 다음 주에 점수의 크기가 소프트맥스의 날카로움을 "
            "결정한다는 것을 볼 때 이 성질이 중요해집니다."),
        "attention.softmax": _t(
            "The steps are properties you will use again and again: each row sums to 1; adding a constant "
            "to a row changes nothing; the Jacobian is <code>(diag(s) − sᵀs)/τ</code>, so the gradient "
            "that reaches the scores is <code>s ∘ (g − (g·s)1)</code>, the form that reappears in the "
            "attention backward pass next week; and the two temperature limits. The implementation "
            "subtracts the row maximum before exponentiating, which shift invariance makes exact and which "
            "keeps <code>exp</code> from overflowing.",
            "단계들은 앞으로 계속 쓰게 될 성질들입니다. 각 행의 합은 1이고, 행에 상수를 더해도 변하지 않으며, "
            "야코비안(Jacobian)은 <code>(diag(s) − sᵀs)/τ</code>입니다. 따라서 점수에 도달하는 그래디언트는 "
            "<code>s ∘ (g − (g·s)1)</code>이고, 이 형태는 다음 주 어텐션의 역전파에서 다시 나옵니다. 그리고 두 "
            "가지 온도 극한이 있습니다. 구현은 지수를 취하기 전에 행의 최댓값을 빼는데, 이동 불변성 덕분에 "
            "결과는 정확히 같고 <code>exp</code>의 오버플로도 막을 수 있습니다."),
    },
    numbers=(
        _num("attention", "entropy.uniform", ".3f",
             "entropy of uniform weights over the visible keys (c → 0), nats",
             "볼 수 있는 키에 대한 균등 가중치의 엔트로피 (c → 0), nats"),
        _num("attention", "observations.1.evidence.entropy at c = 1.0", ".3f",
             "mean row entropy of the first layer at c = 1, as the model runs, nats",
             "모델이 실제로 쓰는 c = 1에서 첫 층의 평균 행 엔트로피, nats"),
        _num("attention",
             "observations.0.evidence.share of the variance of the visible scores that is row offsets, "
             "per layer and head.0.0", ".1%",
             "share of the score variance that is a per-row offset (layer 0, head 0)",
             "점수 분산 중 행별 상수(오프셋)가 차지하는 비율 (0층, 0번 헤드)"),
        _num("attention", "reproduction.max_relative_difference", ".2g",
             "block rebuilt from the heatmaps against the block's own output (largest relative difference)",
             "히트맵으로 다시 조립한 블록과 원래 블록 출력의 최대 상대 차이"),
    ),
    exercises=(
        _ex("tfd derive attention.softmax",
            _t("Show that adding the same constant to every score of a row leaves the attention weights "
               "unchanged. Which part of a score map can the model therefore never use?",
               "한 행의 모든 점수에 같은 상수를 더해도 어텐션 가중치가 변하지 않음을 보이세요. 그렇다면 점수 "
               "맵의 어떤 부분은 모델이 결코 활용할 수 없을까요?"),
            _t("Step 2: <code>softmax(c1 + x) = softmax(x)</code>. Anything constant along a row (an offset "
               "that belongs to the query alone) drops out.",
               "2단계: <code>softmax(c1 + x) = softmax(x)</code>. 한 행을 따라 일정한 것(쿼리에만 속한 "
               "오프셋)은 사라집니다.")),
        _ex("tfd derive attention.scores",
            _t("Show that entry (t, s) of <code>QKᵀ</code> is the dot product of query t and key s, and that "
               "scaling one query scales one row of scores.",
               "<code>QKᵀ</code>의 (t, s) 항목이 쿼리 t와 키 s의 내적이고, 쿼리 하나를 스케일하면 점수의 한 "
               "행이 스케일됨을 보이세요."),
            _t("Steps 1 and 2.", "1단계와 2단계.")),
        _ex("tfd verify attention.softmax",
            _t("Derive the Jacobian of the softmax with temperature and check it against JAX's automatic "
               "differentiation.",
               "온도가 있는 소프트맥스의 야코비안을 유도하고, JAX의 자동 미분과 비교해 확인하세요."),
            _t("Step 3 is <code>(diag(s) − sᵀs)/τ</code>. The output shows the steps proved, the numeric "
               "error and the gradient error, each within 1e-5.",
               "3단계가 <code>(diag(s) − sᵀs)/τ</code>입니다. 출력에서 증명된 단계 수, 수치 오차, 그래디언트 "
               "오차가 각각 1e-5 이내인지 보세요.")),
    ),
)


# ---------------------------------------------------------------------------------------
# Week 7: scaled dot-product attention
# ---------------------------------------------------------------------------------------

WEEK_7 = Week(
    number=7,
    title=_t("Scaled dot-product attention", "스케일드 닷-프로덕트 어텐션(SDPA)"),
    goal=_t(
        "Write attention as <code>softmax(QKᵀ/√K, M)V</code>, prove why the scores are divided by "
        "<code>√K</code>, apply the causal mask, and derive the backward pass that gives dQ, dK and dV.",
        "어텐션을 <code>softmax(QKᵀ/√K, M)V</code>로 쓰고, 점수를 <code>√K</code>로 나누는 이유를 증명하며, "
        "인과 마스크를 적용하고, dQ, dK, dV를 주는 역전파를 유도합니다."),
    intro=(
        _t("Scaled dot-product attention puts week 6 together: the scores <code>QKᵀ</code>, divided by "
           "<code>√K</code>, masked, turned row by row into weights P by the softmax, and used to average "
           "the value rows, <code>O = PV</code>. Each output row is a weighted average of the values, "
           "weighted by how well that query matches each key.",
           "스케일드 닷-프로덕트 어텐션(scaled dot-product attention)은 6주차의 내용을 하나로 묶습니다. 점수 "
           "<code>QKᵀ</code>를 <code>√K</code>로 나누고, 마스크를 씌우고, 소프트맥스로 행마다 가중치 P로 "
           "바꾼 뒤, 값 행들을 평균하는 데 씁니다: <code>O = PV</code>. 출력의 각 행은 값들의 가중 평균이고, "
           "가중치는 그 쿼리가 각 키와 얼마나 잘 맞는지입니다."),
        _t("Why <code>√K</code>? If the entries of q and k are independent with mean 0 and variance 1, each "
           "product <code>q_i k_i</code> has variance 1 and the K terms are uncorrelated, so "
           "<code>Var(q·k) = K</code>. Wide heads therefore produce large scores, the softmax saturates "
           "towards one-hot, and its gradient vanishes (the Jacobian <code>diag(s) − sᵀs</code> is nearly "
           "zero for a one-hot s). Dividing by <code>√K</code> restores unit variance at every head width. "
           "The <code>sdpa</code> experiment measures all three, the variance, the entropy of the weights "
           "and the gradient that reaches Q and K, over a range of head widths, with and without the "
           "scale; its notes explain why the <em>median</em> gradient is the one to watch.",
           "왜 <code>√K</code>일까요? q와 k의 항목이 평균 0, 분산 1로 서로 독립이면 각 곱 <code>q_i k_i</code>의 "
           "분산은 1이고 K개의 항은 서로 상관이 없으므로 <code>Var(q·k) = K</code>입니다. 따라서 헤드가 넓을수록 "
           "점수가 커지고, 소프트맥스는 원-핫 쪽으로 포화되며, 그래디언트가 사라집니다(s가 원-핫에 가까우면 "
           "야코비안 <code>diag(s) − sᵀs</code>는 거의 0입니다). <code>√K</code>로 나누면 헤드 폭과 상관없이 "
           "분산이 1로 돌아옵니다. <code>sdpa</code> 실험은 여러 헤드 폭에서, 스케일이 있을 때와 없을 때 이 세 "
           "가지, 즉 분산, 가중치의 엔트로피, Q와 K에 도달하는 그래디언트를 측정합니다. 왜 <em>중앙값</em> "
           "그래디언트를 봐야 하는지는 실험의 노트가 설명합니다."),
        _t("A mask M removes the keys a query may not see: their weights are exactly 0, and each row still "
           "sums to 1. The causal mask of a language model lets position t see only s ≤ t, which is what "
           "keeps next-token training honest (<a href=\"week-01.html\">week 1</a>). The backward pass is "
           "the chain rule through three products: <code>dV = PᵀdO</code>, <code>dP = dO Vᵀ</code>, "
           "<code>dS = P ∘ (dP − rowsum(dP ∘ P))</code>, then <code>dQ = dS K/√K</code> and "
           "<code>dK = dSᵀQ/√K</code>. These are the formulas FlashAttention computes; the "
           "<code>flash</code> derivations show how the softmax can be evaluated one block of keys at a "
           "time, so that the T × S matrix is never stored.",
           "마스크 M은 쿼리가 보면 안 되는 키를 지웁니다. 그 키의 가중치는 정확히 0이 되고, 각 행의 합은 여전히 "
           "1입니다. 언어 모델의 인과 마스크는 위치 t가 s ≤ t인 위치만 보게 하며, 이것이 다음 토큰 학습을 "
           "정직하게 만듭니다(<a href=\"week-01.html\">1주차</a>). 역전파는 세 번의 곱을 거슬러 가는 연쇄 "
           "법칙입니다: <code>dV = PᵀdO</code>, <code>dP = dO Vᵀ</code>, <code>dS = P ∘ (dP − rowsum(dP ∘ "
           "P))</code>, 그리고 <code>dQ = dS K/√K</code>, <code>dK = dSᵀQ/√K</code>. FlashAttention이 계산하는 "
           "것이 바로 이 식들이며, <code>flash</code> 유도들은 소프트맥스를 키 블록 단위로 계산해 T × S 행렬을 "
           "저장하지 않는 방법을 보여 줍니다."),
    ),
    derivation_notes={
        "attention.scaled_scores": _t(
            "A statement about random vectors, proved with <code>sympy.stats</code> one term at a time: "
            "each <code>q_i k_i</code> has variance 1 (for Gaussian entries and, step 2, for uniform ones: "
            "only the mean and variance matter), distinct terms are uncorrelated, so "
            "<code>Var(q·k) = K</code> and <code>Var(q·k/√K) = 1</code>. The verifier also samples the "
            "model function and tests the variance of the scaled scores.",
            "확률 벡터에 관한 명제로, <code>sympy.stats</code>로 항 하나씩 증명합니다. 각 <code>q_i k_i</code>의 "
            "분산은 1이고(가우시안 항목일 때, 그리고 2단계에서 보듯 균등 분포 항목일 때도: 평균과 분산만이 "
            "중요합니다), 서로 다른 항은 상관이 없으므로 <code>Var(q·k) = K</code>, "
            "<code>Var(q·k/√K) = 1</code>입니다. 검증기는 모델 함수에서 표본을 뽑아 스케일된 점수의 분산도 "
            "검사합니다."),
        "attention.sdpa": _t(
            "The full formula with a 0/1 mask. The steps show that an all-ones mask is no mask, masked "
            "weights are exactly 0, every row still sums to 1, and the 0/1 mask is the limit of adding "
            "<code>−c</code> to the masked scores as c → ∞. The implementation masks with "
            "<code>where</code> and <code>−∞</code>, and a row with every key masked gives zeros, not NaN.",
            "0/1 마스크가 있는 전체 식입니다. 단계들은 모든 항목이 1인 마스크는 마스크가 없는 것과 같고, 가려진 "
            "가중치는 정확히 0이며, 모든 행의 합이 여전히 1이고, 0/1 마스크는 가려진 점수에 <code>−c</code>를 "
            "더하고 c → ∞로 보낸 극한임을 보입니다. 구현은 <code>where</code>와 <code>−∞</code>로 마스크를 "
            "씌우며, 모든 키가 가려진 행은 NaN이 아니라 0을 줍니다."),
        "attention.causal_mask": _t(
            "With S = T the mask is the lower triangle. Steps 2 and 3 prove that the output at t does not "
            "depend on keys or values after t; the verifier checks the same with <code>jax.jacfwd</code> on "
            "the compiled function.",
            "S = T이면 마스크는 하삼각 행렬입니다. 2단계와 3단계는 t에서의 출력이 t 이후의 키나 값에 의존하지 "
            "않음을 증명하고, 검증기는 컴파일된 함수에 <code>jax.jacfwd</code>를 적용해 같은 사실을 확인합니다."),
        "attention.backward": _t(
            "Read it as the chain rule through three products. <code>O = PV</code> gives "
            "<code>dV = PᵀdO</code> and <code>dP = dO Vᵀ</code>; through the softmax each row takes the "
            "Jacobian of week 6, which gives <code>dS = P ∘ (dP − rowsum(dP ∘ P))</code>; "
            "<code>S = QKᵀ/√K</code> gives dQ and dK. The verifier compares these with "
            "<code>jax.vjp</code> of the implementation.",
            "세 번의 곱을 거슬러 가는 연쇄 법칙으로 읽으면 됩니다. <code>O = PV</code>에서 <code>dV = PᵀdO</code>와 "
            "<code>dP = dO Vᵀ</code>가 나오고, 소프트맥스를 지나며 각 행에 6주차의 야코비안이 곱해져 "
            "<code>dS = P ∘ (dP − rowsum(dP ∘ P))</code>가 되며, <code>S = QKᵀ/√K</code>에서 dQ와 dK가 "
            "나옵니다. 검증기는 이를 구현의 <code>jax.vjp</code>와 비교합니다."),
        "flash.online_softmax": _t(
            "The softmax needs the whole row for its denominator, yet it can be computed one block at a "
            "time: keep a running maximum m, a running sum ℓ and an accumulator o, and rescale ℓ and o by "
            "<code>e^(m − m′)</code> whenever the maximum grows. The invariant holds for any running value "
            "(the factor cancels in <code>o/ℓ</code>); the maximum is used only so that no exponent is "
            "positive.",
            "소프트맥스는 분모를 위해 행 전체가 필요하지만, 한 번에 한 블록씩 계산할 수도 있습니다. 현재까지의 "
            "최댓값 m, 누적 합 ℓ, 누산기 o를 유지하다가 최댓값이 커질 때마다 ℓ과 o에 <code>e^(m − m′)</code>를 "
            "곱해 다시 맞춥니다. 이 불변식은 어떤 값을 기준으로 삼아도 성립하며(그 인수는 <code>o/ℓ</code>에서 "
            "약분됩니다), 최댓값을 쓰는 이유는 지수가 양수가 되지 않게 하기 위해서일 뿐입니다."),
        "flash.attention": _t(
            "Tiles of queries and keys update those running quantities, tiles entirely above the causal "
            "diagonal are skipped, and the backward pass recomputes each tile's weights from the stored "
            "log-sum-exp. The result is the same attention in <code>O(T·K)</code> memory instead of "
            "<code>O(T·S)</code>. In this project <code>flash_attention</code> takes the arguments of "
            "<code>sdpa</code> and the verifier compares its outputs and gradients with <code>sdpa</code>'s; "
            "the GPT's heads call <code>sdpa</code>.",
            "쿼리와 키를 타일로 나눠 이 누적 값들을 갱신하고, 인과 대각선보다 완전히 위에 있는 타일은 건너뛰며, "
            "역전파는 저장해 둔 log-sum-exp로부터 각 타일의 가중치를 다시 계산합니다. 결과는 같은 어텐션이지만 "
            "메모리는 <code>O(T·S)</code>가 아니라 <code>O(T·K)</code>입니다. 이 프로젝트에서 "
            "<code>flash_attention</code>은 <code>sdpa</code>와 같은 인자를 받으며, 검증기가 그 출력과 "
            "그래디언트를 <code>sdpa</code>의 것과 비교합니다. GPT의 헤드는 <code>sdpa</code>를 호출합니다."),
    },
    numbers=(
        _num("sdpa", "head_widths.-1", "d", "largest head width d measured", "측정한 가장 큰 헤드 폭 d"),
        _num("sdpa", "variance.raw.-1", ".4g",
             "Var(q·k) at the largest d (the derivation says d)", "가장 큰 d에서 Var(q·k) (유도: d)"),
        _num("sdpa", "variance.scaled.-1", ".3f",
             "Var(q·k/√d) at the largest d (the derivation says 1)", "가장 큰 d에서 Var(q·k/√d) (유도: 1)"),
        _num("sdpa", "entropy.scaled.-1", ".3f",
             "entropy of the weights with 1/√d at the largest d, nats",
             "가장 큰 d에서 1/√d가 있을 때 가중치의 엔트로피, nats"),
        _num("sdpa", "entropy.unscaled.-1", ".3f",
             "entropy of the weights without 1/√d at the largest d, nats",
             "가장 큰 d에서 1/√d가 없을 때 가중치의 엔트로피, nats"),
    ),
    exercises=(
        _ex("tfd derive attention.scaled_scores",
            _t("Show that <code>Var(q·k) = K</code> for independent entries of mean 0 and variance 1, and "
               "that dividing by <code>√K</code> gives variance 1. Is the Gaussian assumption needed?",
               "평균 0, 분산 1인 독립 항목에 대해 <code>Var(q·k) = K</code>이고, <code>√K</code>로 나누면 분산이 "
               "1이 됨을 보이세요. 가우시안이라는 가정이 필요할까요?"),
            _t("Steps 1 to 5; step 2 repeats step 1 for uniform entries: only the mean and the variance "
               "matter.",
               "1~5단계. 2단계는 균등 분포 항목에 대해 1단계를 반복합니다. 평균과 분산만이 중요합니다.")),
        _ex("tfd verify attention.causal_mask",
            _t("Show that the causal attention output at position t does not change when a later key or "
               "value changes, symbolically and on the compiled function.",
               "인과 어텐션에서 위치 t의 출력이 뒤의 키나 값이 바뀌어도 변하지 않음을, 기호적으로 그리고 컴파일된 "
               "함수에서 보이세요."),
            _t("The steps proved, and the sampled check: the largest derivative of <code>o_t</code> with "
               "respect to <code>(q, k, v)_s</code> for s > t, by <code>jax.jacfwd</code>, must be 0.",
               "증명된 단계들, 그리고 표본 검사: <code>jax.jacfwd</code>로 구한, s > t인 "
               "<code>(q, k, v)_s</code>에 대한 <code>o_t</code>의 도함수의 최댓값이 0이어야 합니다.")),
        _ex("tfd derive attention.backward",
            _t("Derive dV and dQ for <code>O = softmax(QKᵀ/√K)V</code>.",
               "<code>O = softmax(QKᵀ/√K)V</code>에 대해 dV와 dQ를 유도하세요."),
            _t("Step 1: <code>dV = PᵀdO</code>. Step 2: <code>dQ = dS K/√K</code> with "
               "<code>dS = P ∘ (dP − rowsum(dP ∘ P))</code>, the softmax Jacobian of week 6 applied row by "
               "row.",
               "1단계: <code>dV = PᵀdO</code>. 2단계: <code>dQ = dS K/√K</code>, 여기서 "
               "<code>dS = P ∘ (dP − rowsum(dP ∘ P))</code>는 6주차의 소프트맥스 야코비안을 행마다 적용한 "
               "것입니다.")),
        _ex("tfd derive flash.online_softmax",
            _t("In the online softmax, why may the running maximum be any number at all, and why use the "
               "maximum?",
               "온라인 소프트맥스에서 현재 최댓값 자리에 아무 수나 써도 되는 이유는 무엇이고, 그런데도 최댓값을 "
               "쓰는 이유는 무엇인가요?"),
            _t("Step 1: the invariant <code>ℓ = e^(−m) L</code> survives any new value m′, and "
               "<code>e^(−m)</code> cancels in <code>o/ℓ</code>. The maximum keeps every exponent ≤ 0, so "
               "nothing overflows.",
               "1단계: 불변식 <code>ℓ = e^(−m) L</code>은 어떤 새 값 m′에서도 유지되고, <code>e^(−m)</code>은 "
               "<code>o/ℓ</code>에서 약분됩니다. 최댓값을 쓰면 모든 지수가 0 이하가 되어 오버플로가 생기지 "
               "않습니다.")),
    ),
)


# ---------------------------------------------------------------------------------------
# Week 8: multi-head attention
# ---------------------------------------------------------------------------------------

WEEK_8 = Week(
    number=8,
    title=_t("Multi-head attention", "멀티헤드 어텐션"),
    goal=_t(
        "Split attention into H heads of width <code>K = D/H</code>, show that concatenating the heads and "
        "applying <code>W_O</code> is a sum of per-head contributions, and show that the parameter count "
        "<code>4D² + 4D</code> does not depend on H.",
        "어텐션을 폭 <code>K = D/H</code>인 H개의 헤드로 나누고, 헤드를 이어 붙인 뒤 <code>W_O</code>를 "
        "곱하는 것이 헤드별 기여의 합임을 보이며, 파라미터 수 <code>4D² + 4D</code>가 H에 의존하지 않음을 "
        "보입니다."),
    intro=(
        _t("One attention computes one set of weights per query: one way of deciding what is relevant. "
           "Multi-head attention runs H attentions side by side, each in its own K-dimensional subspace: "
           "the columns of <code>W_Q</code>, <code>W_K</code> and <code>W_V</code> are cut into H blocks, "
           "head h attends with its own blocks, and the H outputs of width K are concatenated back to "
           "width D and mixed by <code>W_O</code>. The scale is <code>1/√K</code>, the head width, not "
           "<code>1/√D</code>.",
           "어텐션 하나는 쿼리마다 가중치 한 벌, 즉 무엇이 관련 있는지를 정하는 한 가지 방식을 계산합니다. "
           "멀티헤드 어텐션(multi-head attention)은 H개의 어텐션을 나란히 실행하며, 각각은 자기만의 K차원 "
           "부분공간에서 동작합니다. <code>W_Q</code>, <code>W_K</code>, <code>W_V</code>의 열을 H개의 블록으로 "
           "자르고, 헤드 h는 자기 블록으로 어텐션하며, 폭 K인 H개의 출력을 이어 붙여(concatenate) 다시 폭 D로 "
           "만든 뒤 <code>W_O</code>로 섞습니다. 스케일은 <code>1/√D</code>가 아니라 헤드 폭의 "
           "<code>1/√K</code>입니다."),
        _t("Two facts make heads cheap and analysable. First, <code>Concat(o_0, …, o_(H−1)) W_O = Σ_h o_h "
           "W_O^(h)</code>: each head writes into the output through its own K rows of <code>W_O</code>, "
           "independently and additively. Removing a head is therefore exactly zeroing its rows of "
           "<code>W_O</code>, which is how the <code>heads</code> experiment ablates heads. Second, the "
           "projections are the same D × D matrices whatever H is, so the number of heads costs no "
           "parameters: it changes what the layer can express, not its size.",
           "헤드를 싸고 분석하기 쉽게 만드는 사실이 두 가지 있습니다. 첫째, <code>Concat(o_0, …, o_(H−1)) W_O = "
           "Σ_h o_h W_O^(h)</code>입니다. 각 헤드는 <code>W_O</code> 중 자기 몫의 K개 행을 통해 독립적으로, "
           "더해지는 방식으로 출력에 씁니다. 그래서 헤드 하나를 제거하는 것은 정확히 <code>W_O</code>에서 그 "
           "헤드의 행들을 0으로 만드는 것이고, <code>heads</code> 실험은 이렇게 헤드를 제거(ablation)합니다. "
           "둘째, H가 얼마든 사영 행렬은 같은 D × D 행렬이므로 헤드 수에는 파라미터 비용이 들지 않습니다. 헤드 "
           "수는 층이 표현할 수 있는 것을 바꿀 뿐 크기는 바꾸지 않습니다."),
        _t("The <code>heads</code> experiment draws every head's attention pattern in the shared GPT, "
           "measures the validation loss with each head removed and with a whole layer's heads removed, "
           "and trains two small GPTs that differ only in H (1 and 4) from identical initial weights. "
           "Compare the cost of removing one head with that of removing a whole layer: the costs need not "
           "add up. And read the one-against-four comparison against the spread between seeds, which a "
           "single seed cannot show (the experiment's <code>--scale</code> repeats it over seeds).",
           "<code>heads</code> 실험은 공유 GPT의 모든 헤드의 어텐션 패턴을 그리고, 헤드를 하나씩 제거했을 때와 "
           "한 층의 헤드를 모두 제거했을 때의 검증 손실을 측정하며, H만 다른(1과 4) 작은 GPT 두 개를 같은 초기 "
           "가중치에서 학습시킵니다. 헤드 하나를 제거하는 비용과 층 전체를 제거하는 비용을 비교해 보세요. 비용은 "
           "단순히 더해지지 않을 수 있습니다. 또 헤드 1개와 4개의 비교는 시드(seed) 사이의 편차와 함께 읽어야 "
           "하는데, 시드 하나로는 그 편차를 볼 수 없습니다(실험의 <code>--scale</code>이 여러 시드로 "
           "반복합니다)."),
    ),
    derivation_notes={
        "multihead.attention": _t(
            "The statement is the whole layer. Step 1: cutting a projection into column blocks and "
            "concatenating them gives back the full projection, so the heads really partition "
            "<code>x W_Q</code>. Step 2: with one head it is week 7's attention followed by <code>W_O</code>. "
            "Step 3: a value bias passes through attention unchanged, because each row of weights sums to "
            "1, so <code>b_V</code> only adds a constant row that could live in <code>b_O</code>.",
            "명제는 층 전체입니다. 1단계: 사영을 열 블록으로 잘랐다가 이어 붙이면 원래의 사영이 되므로, 헤드들은 "
            "실제로 <code>x W_Q</code>를 분할합니다. 2단계: 헤드가 하나면 7주차의 어텐션 뒤에 "
            "<code>W_O</code>를 곱한 것입니다. 3단계: 가중치의 각 행의 합이 1이므로 값 바이어스는 어텐션을 "
            "그대로 통과하고, 따라서 <code>b_V</code>는 <code>b_O</code>에 흡수될 수 있는 상수 행을 더할 "
            "뿐입니다."),
        "multihead.concat_identity": _t(
            "Block matrix multiplication: a row of heads side by side times <code>W_O</code> equals the sum "
            "over heads of each head times its block of rows. The implementation computes the sum form. "
            "This identity is why a head can be removed by zeroing its rows of <code>W_O</code>, and why "
            "interpretability work treats heads as independent writers into the residual stream.",
            "블록 행렬 곱셈입니다. 헤드들을 나란히 놓은 행에 <code>W_O</code>를 곱한 것은, 각 헤드에 그 헤드 몫의 "
            "행 블록을 곱해 헤드에 대해 더한 것과 같습니다. 구현은 합의 형태로 계산합니다. 이 항등식 덕분에 "
            "<code>W_O</code>의 행을 0으로 만들어 헤드를 제거할 수 있고, 해석 가능성(interpretability) 연구가 "
            "헤드를 잔차 스트림(residual stream)에 독립적으로 쓰는 주체로 다룰 수 있습니다."),
        "multihead.param_count": _t(
            "Four D × D matrices and four biases of D: <code>4D² + 4D</code>. Counted head by head (step 2), "
            "H heads of D × K blocks with <code>K = D/H</code> give the same total, so H does not appear.",
            "D × D 행렬 네 개와 길이 D인 바이어스 네 개: <code>4D² + 4D</code>입니다. 헤드별로 세어도(2단계) "
            "<code>K = D/H</code>인 D × K 블록 H개는 같은 합이 되므로, H는 식에 나타나지 않습니다."),
    },
    numbers=(
        _num("heads", "ablation.base", ".4f",
             "shared GPT: validation loss with every head", "공유 GPT: 모든 헤드가 있을 때의 검증 손실"),
        _num("heads", "ablation.delta_layer.0", ".4f",
             "loss increase with every head of layer 0 removed", "0층의 헤드를 모두 제거했을 때의 손실 증가"),
        _num("heads", "head_count.summary.1.final_val_loss.mean", ".4f",
             "1 head: final validation loss", "헤드 1개: 최종 검증 손실"),
        _num("heads", "head_count.summary.4.final_val_loss.mean", ".4f",
             "4 heads: final validation loss (the same parameters)", "헤드 4개: 최종 검증 손실 (같은 파라미터 수)"),
        _num("heads", "parameters.attention_per_layer.4", ",",
             "attention parameters per layer, 4 heads (as with 1)",
             "층당 어텐션 파라미터 수, 헤드 4개 (1개일 때와 같음)"),
    ),
    exercises=(
        _ex("tfd derive multihead.param_count",
            _t("Show that H heads of width <code>K = D/H</code> have exactly as many parameters as one head "
               "of width D.",
               "폭 <code>K = D/H</code>인 헤드 H개의 파라미터 수가 폭 D인 헤드 하나와 정확히 같음을 보이세요."),
            _t("Step 2 counts per head; with <code>K = D/H</code> the H disappears.",
               "2단계는 헤드별로 셉니다. <code>K = D/H</code>를 넣으면 H가 사라집니다.")),
        _ex("tfd derive multihead.concat_identity",
            _t("Show that <code>Concat_h(o_h) W_O = Σ_h o_h W_O^(h)</code>. Why does zeroing rows "
               "<code>hK … (h+1)K − 1</code> of <code>W_O</code> remove exactly head h?",
               "<code>Concat_h(o_h) W_O = Σ_h o_h W_O^(h)</code>임을 보이세요. <code>W_O</code>의 "
               "<code>hK … (h+1)K − 1</code>번째 행을 0으로 만들면 왜 정확히 헤드 h만 제거되나요?"),
            _t("Step 2: head h reaches the output only through <code>W_O^(h)</code>, its K rows. Zero them "
               "and its term of the sum is 0, while <code>b_O</code> and the other heads are untouched.",
               "2단계: 헤드 h는 자기 몫의 K개 행인 <code>W_O^(h)</code>를 통해서만 출력에 닿습니다. 이를 0으로 "
               "만들면 합에서 그 항이 0이 되고, <code>b_O</code>와 다른 헤드는 그대로입니다.")),
        _ex("tfd verify multihead.attention",
            _t("Check that with one head, multi-head attention is week 7's attention followed by "
               "<code>W_O</code>, and that the whole layer matches its implementation, causal mask included.",
               "헤드가 하나일 때 멀티헤드 어텐션이 7주차의 어텐션 뒤에 <code>W_O</code>를 곱한 것임을, 그리고 "
               "층 전체가 인과 마스크까지 포함해 구현과 일치함을 확인하세요."),
            _t("All steps proved, the numeric error within 1e-5, and the sampled checks (among them: no "
               "output depends on a later input).",
               "모든 단계가 증명되고, 수치 오차가 1e-5 이내이며, 표본 검사(그중 하나: 어떤 출력도 뒤의 입력에 "
               "의존하지 않음)를 통과하는지 보세요.")),
    ),
)


# ---------------------------------------------------------------------------------------
# Week 9: the position-wise feed-forward network (basics, then experiments)
# ---------------------------------------------------------------------------------------

WEEK_9 = Week(
    number=9,
    title=_t("The position-wise feed-forward network", "포지션별 피드포워드 네트워크(FFN)"),
    goal=_t(
        "Basics: write the FFN as <code>φ(xW₁ + b₁)W₂ + b₂</code> applied to every position separately, "
        "derive its backward pass with ReLU and with GELU, and count its parameters. Experiments: read its "
        "hidden units as keys and values, and measure how sparse they are and what the width buys.",
        "기초: FFN을 각 위치에 따로 적용되는 <code>φ(xW₁ + b₁)W₂ + b₂</code>로 쓰고, ReLU와 GELU 각각에 대해 "
        "역전파를 유도하며, 파라미터 수를 셉니다. 실험: 은닉 유닛을 키와 값으로 읽고, 얼마나 희소한지와 폭을 "
        "늘리면 무엇을 얻는지 측정합니다."),
    intro=(
        _t("<strong>Basics.</strong> After attention has mixed information across positions, each position "
           "goes through the same small two-layer network: lift its D features to a hidden width F (4D in "
           "the original transformer and in GPT-2), apply a nonlinearity, project back to D. "
           "<em>Position-wise</em> means the same weights at every position and no interaction between "
           "positions: row t of the output depends on row t of the input only. Mixing across positions is "
           "attention's job; the FFN transforms each position's features.",
           "<strong>기초.</strong> 어텐션이 위치들 사이에 정보를 섞고 나면, 각 위치는 같은 작은 2층 신경망을 "
           "통과합니다. D개의 특징(feature)을 은닉 폭 F(원래 트랜스포머와 GPT-2에서는 4D)로 올리고, 비선형 "
           "함수를 적용한 뒤, 다시 D로 사영합니다. <em>포지션별(position-wise)</em>이라는 말은 모든 위치에 같은 "
           "가중치를 쓰고 위치끼리는 상호작용하지 않는다는 뜻입니다. 출력의 t번째 행은 입력의 t번째 행에만 "
           "의존합니다. 위치 사이를 섞는 것은 어텐션의 일이고, FFN은 각 위치의 특징을 변환합니다."),
        _t("ReLU, <code>max(0, x)</code>, cuts at zero, so its backward pass is a 0/1 gate: only active "
           "units pass gradient. GELU, <code>xΦ(x)</code>, weights its input by the probability that a "
           "standard normal variable lies below it: a smooth ReLU that dips slightly below zero, whose gate "
           "in the backward pass is <code>Φ(h) + hφ(h)</code>. BERT uses the exact GELU, GPT-2's code a "
           "tanh approximation of it, and the shared GPT of this project ReLU.",
           "ReLU, 즉 <code>max(0, x)</code>는 0에서 잘라 내므로 역전파가 0/1 게이트가 됩니다. 활성화된 유닛만 "
           "그래디언트를 전달합니다. GELU, 즉 <code>xΦ(x)</code>는 입력에 '표준 정규 확률변수가 그 값보다 작을 "
           "확률'을 곱합니다. 0보다 살짝 아래로 내려가는 부드러운 ReLU이며, 역전파에서의 게이트는 "
           "<code>Φ(h) + hφ(h)</code>입니다. BERT는 정확한 GELU를, GPT-2의 코드는 그 tanh 근사를, 이 "
           "프로젝트의 공유 GPT는 ReLU를 씁니다."),
        _t("The FFN holds most of a block's parameters: <code>2DF + F + D</code>, which with "
           "<code>F = 4D</code> is <code>8D² + 5D</code> against attention's <code>4D² + 4D</code>, two "
           "thirds of the two as D grows.",
           "FFN은 블록 파라미터의 대부분을 차지합니다. <code>2DF + F + D</code>개이고, <code>F = 4D</code>이면 "
           "<code>8D² + 5D</code>로, 어텐션의 <code>4D² + 4D</code>와 합한 것 중 D가 커질수록 3분의 2가 "
           "됩니다."),
        _t("<strong>Experiments.</strong> The <code>ffn</code> experiment looks at the FFN three ways. As a "
           "key–value memory (Geva et al., 2021): column i of <code>W₁</code> is a key that unit i fires "
           "on, row i of <code>W₂</code> a value it adds to the residual stream; for the most active units "
           "of the shared GPT's last block it lists the contexts that excite them most, and reads each "
           "value through the output head as the characters it promotes. Compare the agreement between "
           "the two with chance. As a sparse code: the fraction of hidden activations that are exactly 0, "
           "ReLU against GELU, at initialisation and after training. And by its width: GPTs that differ "
           "only in F/D, trained alike.",
           "<strong>실험.</strong> <code>ffn</code> 실험은 FFN을 세 가지 방식으로 봅니다. 첫째, 키–값 "
           "메모리로 봅니다(Geva et al., 2021). <code>W₁</code>의 i번째 열은 유닛 i를 발화시키는 키이고, "
           "<code>W₂</code>의 i번째 행은 그 유닛이 잔차 스트림에 더하는 값입니다. 공유 GPT의 마지막 블록에서 "
           "가장 활발한 유닛들에 대해 그 유닛을 가장 강하게 자극하는 문맥을 나열하고, 각 값을 출력 헤드에 "
           "통과시켜 그 값이 밀어 올리는 문자들로 읽습니다. 둘 사이의 일치도를 우연 수준과 비교해 보세요. "
           "둘째, 희소 코드(sparse code)로 봅니다. 초기화 시점과 학습 후에, 은닉 활성값 중 정확히 0인 것의 "
           "비율을 ReLU와 GELU로 비교합니다. 셋째, 폭으로 봅니다. F/D만 다른 GPT들을 같은 방식으로 "
           "학습시킵니다."),
    ),
    derivation_notes={
        "feedforward.relu": _t(
            "The steps are the backward pass, written with the step function H(h) as ReLU's derivative: "
            "<code>dx = (H(h) ∘ dy W₂ᵀ) W₁ᵀ</code>, <code>dW₁ = xᵀ(H(h) ∘ dy W₂ᵀ)</code>, "
            "<code>dW₂ = ReLU(h)ᵀ dy</code>, and <code>db₁</code> the column sums. A unit inactive for an "
            "input gets no gradient from it; a unit inactive for every input (a dead unit) stops learning.",
            "단계들은 ReLU의 도함수를 계단 함수 H(h)로 써서 나타낸 역전파입니다: "
            "<code>dx = (H(h) ∘ dy W₂ᵀ) W₁ᵀ</code>, <code>dW₁ = xᵀ(H(h) ∘ dy W₂ᵀ)</code>, "
            "<code>dW₂ = ReLU(h)ᵀ dy</code>, 그리고 <code>db₁</code>은 열의 합입니다. 어떤 입력에서 비활성인 "
            "유닛은 그 입력으로부터 그래디언트를 받지 못하고, 모든 입력에서 비활성인 유닛(죽은 유닛, dead "
            "unit)은 학습을 멈춥니다."),
        "feedforward.gelu": _t(
            "<code>GELU(x) = xΦ(x)</code>. The steps derive Φ from erf, the derivative "
            "<code>Φ(x) + xφ(x)</code>, the limits (the identity on the right, zero on the left, like ReLU), "
            "and <code>GELU − ReLU = −|x|Φ(−|x|)</code>, an even dip near 0. GELU is 0 only at x = 0 (and "
            "where float32 underflows), so its fraction of exact zeros in the experiment should be about 0.",
            "<code>GELU(x) = xΦ(x)</code>. 단계들은 erf로부터 Φ를, 도함수 <code>Φ(x) + xφ(x)</code>를, 극한"
            "(ReLU처럼 오른쪽에서는 항등 함수, 왼쪽에서는 0)을, 그리고 <code>GELU − ReLU = −|x|Φ(−|x|)</code>, "
            "즉 0 근처에서 아래로 움푹 팬 우함수(even function)임을 유도합니다. GELU는 x = 0에서만(그리고 "
            "float32가 언더플로하는 곳에서만) 0이므로, 실험에서 정확히 0인 비율은 거의 0이어야 합니다."),
        "feedforward.gelu_ffn": _t(
            "The same network with GELU: the hard gate H(h) of the ReLU backward pass becomes the smooth gate "
            "<code>Φ(h) + hφ(h)</code>, so units just below zero still pass some gradient.",
            "GELU를 쓴 같은 신경망입니다. ReLU 역전파의 딱딱한 게이트 H(h)가 부드러운 게이트 "
            "<code>Φ(h) + hφ(h)</code>로 바뀌므로, 0보다 약간 작은 유닛도 그래디언트를 조금은 전달합니다."),
        "feedforward.gelu_tanh": _t(
            "GPT-2's approximation. Its tanh gate is a logistic gate in disguise (step 1); "
            "<code>√(2/π)</code> makes its slope at 0 match Φ; the cubic coefficient 0.044715 is not the "
            "Taylor value (step 6) but a fit over the whole line. A model trained with one form should be "
            "run with the same form.",
            "GPT-2의 근사식입니다. tanh 게이트는 사실 로지스틱 게이트입니다(1단계). <code>√(2/π)</code>는 0에서의 "
            "기울기를 Φ와 맞추고, 3차 계수 0.044715는 테일러 전개의 값이 아니라(6단계) 실수 전체에 걸친 "
            "근사(fit)입니다. 한 형태로 학습한 모델은 같은 형태로 실행해야 합니다."),
        "feedforward.gelu_tanh_ffn": _t(
            "The FFN as GPT-2 released it; the <code>gpt2-*</code> presets of this project's GPT use this "
            "activation, so GPT-2-shaped models compute what GPT-2's code computes.",
            "GPT-2가 공개한 그대로의 FFN입니다. 이 프로젝트 GPT의 <code>gpt2-*</code> 프리셋은 이 활성화 함수를 "
            "쓰므로, GPT-2 모양의 모델은 GPT-2의 코드와 같은 것을 계산합니다."),
        "feedforward.position_wise": _t(
            "The property that gives the FFN its name. Row t of the output is the FFN of row t alone, and "
            "any permutation P of the positions commutes with it: <code>FFN(Px) = P FFN(x)</code>. A "
            "sequence can be processed as a batch of independent rows.",
            "FFN에 이름을 준 성질입니다. 출력의 t번째 행은 t번째 행 하나만의 FFN이고, 위치의 어떤 순열 P와도 "
            "교환됩니다: <code>FFN(Px) = P FFN(x)</code>. 시퀀스를 서로 독립인 행들의 배치처럼 처리할 수 "
            "있습니다."),
        "feedforward.param_count": _t(
            "Two weight matrices of D·F entries and two biases. With <code>F = 4D</code> that is "
            "<code>8D² + 5D</code>; next to attention's <code>4D² + 4D</code> the FFN holds two thirds of a "
            "layer's parameters as D grows (step 4).",
            "D·F개 항목의 가중치 행렬 두 개와 바이어스 두 개입니다. <code>F = 4D</code>이면 "
            "<code>8D² + 5D</code>이고, 어텐션의 <code>4D² + 4D</code>와 나란히 놓으면 D가 커질수록 FFN이 층 "
            "파라미터의 3분의 2를 차지합니다(4단계)."),
    },
    numbers=(
        _num("ffn", "sparsity.relu.trained.exact_zero", ".1%",
             "ReLU: hidden activations exactly 0, after training", "ReLU: 학습 후 정확히 0인 은닉 활성값의 비율"),
        _num("ffn", "sparsity.gelu.trained.exact_zero", ".1%",
             "GELU: hidden activations exactly 0, after training", "GELU: 학습 후 정확히 0인 은닉 활성값의 비율"),
        _num("ffn", "memory.mean_agreement", ".3f",
             "key–value memory: next characters of top contexts among the value's top characters",
             "키–값 메모리: 상위 문맥의 다음 문자가 값의 상위 문자에 포함되는 비율"),
        _num("ffn", "memory.chance_agreement", ".3f", "the same by chance", "같은 비율의 우연 수준"),
        _num("ffn", "width.val_loss.0", ".4f", "validation loss at F/D = 1", "F/D = 1일 때의 검증 손실"),
        _num("ffn", "width.val_loss.-1", ".4f",
             "validation loss at the largest F/D tried", "시도한 가장 큰 F/D에서의 검증 손실"),
    ),
    exercises=(
        _ex("tfd derive feedforward.position_wise",
            _t("Show that the FFN commutes with any permutation of the positions.",
               "FFN이 위치의 어떤 순열과도 교환됨을 보이세요."),
            _t("The permutation steps: <code>P1 = 1</code> for a permutation, so the bias rows are unchanged.",
               "순열에 관한 단계들: 순열에 대해 <code>P1 = 1</code>이므로 바이어스 행은 그대로입니다.")),
        _ex("tfd derive feedforward.relu",
            _t("Derive the gradient of the ReLU FFN with respect to its input. Which hidden units pass "
               "gradient?",
               "ReLU FFN의 입력에 대한 그래디언트를 유도하세요. 어떤 은닉 유닛이 그래디언트를 전달하나요?"),
            _t("Step 1: <code>dx = (H(h) ∘ dy W₂ᵀ) W₁ᵀ</code>: only units with h > 0.",
               "1단계: <code>dx = (H(h) ∘ dy W₂ᵀ) W₁ᵀ</code>. h > 0인 유닛만 전달합니다.")),
        _ex("tfd derive feedforward.gelu",
            _t("Show that <code>GELU(x) − GELU(−x) = x</code> and that <code>GELU − ReLU</code> is even. "
               "Where does GELU differ most from ReLU?",
               "<code>GELU(x) − GELU(−x) = x</code>이고 <code>GELU − ReLU</code>가 우함수임을 보이세요. GELU는 "
               "어디에서 ReLU와 가장 크게 다른가요?"),
            _t("The odd-part step and the last two steps: the difference is <code>−|x|Φ(−|x|)</code>, a dip "
               "near 0 that vanishes in both tails.",
               "홀수 부분에 관한 단계와 마지막 두 단계: 차이는 <code>−|x|Φ(−|x|)</code>로, 0 근처에서 아래로 "
               "움푹 패고 양쪽 꼬리에서는 사라집니다.")),
        _ex("tfd derive feedforward.param_count",
            _t("With <code>F = 4D</code>, what fraction of a layer's attention and FFN parameters sits in the "
               "FFN as D grows?",
               "<code>F = 4D</code>일 때, D가 커지면 층의 어텐션과 FFN 파라미터 중 FFN의 비율은 얼마가 되나요?"),
            _t("Step 4: <code>(8D² + 5D)/(12D² + 9D) → 2/3</code>.",
               "4단계: <code>(8D² + 5D)/(12D² + 9D) → 2/3</code>.")),
    ),
)


# ---------------------------------------------------------------------------------------
# Week 10: positional encoding
# ---------------------------------------------------------------------------------------

WEEK_10 = Week(
    number=10,
    title=_t("Positional encoding", "위치 인코딩"),
    goal=_t(
        "See why attention needs positions at all, build the sinusoidal encoding and prove that a shift "
        "is a rotation, and show that rotary embeddings (RoPE) make attention scores depend only on the "
        "offset between positions.",
        "어텐션에 왜 위치 정보가 필요한지 이해하고, 사인파(sinusoidal) 인코딩을 만들어 위치 이동이 회전임을 "
        "증명하며, 회전 위치 임베딩(RoPE)이 어텐션 점수를 위치 사이의 차이에만 의존하게 만든다는 것을 "
        "보입니다."),
    intro=(
        _t("Without positions, attention does not see order: permute the input rows of unmasked "
           "attention and the output rows are permuted the same way (the scores are dot products of rows, "
           "and the FFN is position-wise). A causal model is a partial exception: position t averages "
           "over a prefix of t + 1 tokens, and that carries some information about t. To use order "
           "reliably a model needs positions, in its input or in its scores.",
           "위치 정보가 없으면 어텐션은 순서를 보지 못합니다. 마스크가 없는 어텐션에서 입력 행의 순서를 바꾸면 "
           "출력 행도 똑같이 바뀔 뿐입니다(점수는 행끼리의 내적이고, FFN은 포지션별이기 때문입니다). 인과 "
           "모델은 부분적인 예외입니다. 위치 t는 t + 1개 토큰의 접두사(prefix)를 평균하므로, 그 자체가 t에 대한 "
           "정보를 조금 담습니다. 순서를 확실하게 쓰려면 모델은 입력이나 점수에 위치 정보가 있어야 합니다."),
        _t("The sinusoidal encoding adds to position p a vector of sines and cosines: pair i is "
           "<code>(sin pω_i, cos pω_i)</code> with <code>ω_i = base^(−2i/D)</code>, frequencies falling "
           "geometrically from one radian per position. Each pair is a point going round a circle at its "
           "own speed, like the hands of a clock. So moving from p to p + k turns each pair by "
           "<code>kω_i</code>, a fixed rotation <code>R(k)</code> that does not depend on p, and the dot "
           "product <code>PE(p)·PE(q)</code> depends only on <code>p − q</code>.",
           "사인파 위치 인코딩은 위치 p에 사인과 코사인으로 이루어진 벡터를 더합니다. i번째 쌍은 "
           "<code>(sin pω_i, cos pω_i)</code>이고 <code>ω_i = base^(−2i/D)</code>이며, 주파수는 위치당 1라디안에서 "
           "시작해 기하급수적으로 줄어듭니다. 각 쌍은 자기 속도로 원 위를 도는 점, 말하자면 시계의 바늘과 "
           "같습니다. 그래서 p에서 p + k로 옮기면 각 쌍이 <code>kω_i</code>만큼 돌아가는데, 이는 p와 무관한 고정된 "
           "회전 <code>R(k)</code>이고, 내적 <code>PE(p)·PE(q)</code>는 <code>p − q</code>에만 의존합니다."),
        _t("GPT-2 learns its position table instead (<code>W_P</code>, one row per position up to the "
           "context length). Rotary embeddings (RoPE), used by LLaMA, add nothing to the input: they "
           "rotate each pair of a query and a key by <code>pθ_i</code>, so that a score "
           "<code>⟨R(p)q, R(s)k⟩ = ⟨q, R(s − p)k⟩</code> depends on the content and on the offset "
           "<code>s − p</code> only. This project's GPT can use any of four settings: none, sinusoidal, "
           "learned, rotary.",
           "GPT-2는 대신 위치 테이블을 학습합니다(<code>W_P</code>, 문맥 길이까지 위치마다 한 행). LLaMA가 쓰는 "
           "회전 위치 임베딩(rotary position embedding, RoPE)은 입력에 아무것도 더하지 않습니다. 쿼리와 키의 각 "
           "쌍을 <code>pθ_i</code>만큼 회전시켜, 점수 <code>⟨R(p)q, R(s)k⟩ = ⟨q, R(s − p)k⟩</code>가 내용과 위치 "
           "차이 <code>s − p</code>에만 의존하게 합니다. 이 프로젝트의 GPT는 없음, 사인파, 학습, 회전의 네 가지 "
           "설정을 모두 쓸 수 있습니다."),
        _t("The <code>positional</code> experiment draws the sinusoidal table and its Gram matrix against "
           "<code>p − q</code>, then trains four small GPTs that differ only in their positions on a task "
           "that needs order: reversing a sequence of random symbols. Compare each with chance (1/S) and "
           "with the model without positions. One seed is one sample: the sinusoidal model in particular "
           "can sit at chance for a seed-dependent number of steps, because its table starts much larger "
           "than the token embeddings it is added to.",
           "<code>positional</code> 실험은 사인파 테이블과 그 그람 행렬(Gram matrix)을 <code>p − q</code>에 대해 "
           "그리고, 순서가 필요한 과제, 즉 무작위 기호 시퀀스를 뒤집는 과제로 위치 설정만 다른 작은 GPT 네 "
           "개를 학습시킵니다. 각각을 우연 수준(1/S), 그리고 위치 정보가 없는 모델과 비교해 보세요. 시드 "
           "하나는 표본 하나일 뿐입니다. 특히 사인파 모델은 더해지는 토큰 임베딩보다 테이블이 훨씬 크게 "
           "시작하기 때문에, 시드에 따라 한동안 우연 수준에 머물 수 있습니다."),
    ),
    derivation_notes={
        "positional.sinusoidal": _t(
            "At D = 4 a position q is <code>(sin qω₀, cos qω₀, sin qω₁, cos qω₁)</code>. The steps show that "
            "position 0 is <code>(0, 1, 0, 1, …)</code>, that the frequencies form a geometric sequence, and "
            "that every encoding has the same length <code>√(D/2)</code>: the encoding says where, not how "
            "much. The base (10000 in the paper) is a configuration field here, not a constant in the code.",
            "D = 4에서 위치 q는 <code>(sin qω₀, cos qω₀, sin qω₁, cos qω₁)</code>입니다. 단계들은 위치 0이 "
            "<code>(0, 1, 0, 1, …)</code>이고, 주파수가 등비수열을 이루며, 모든 인코딩의 길이가 "
            "<code>√(D/2)</code>로 같음을 보입니다. 인코딩은 '얼마나'가 아니라 '어디'를 말합니다. base(논문에서는 "
            "10000)는 여기서 코드 안의 상수가 아니라 설정 필드입니다."),
        "positional.shift_rotation": _t(
            "The paper's reason for sinusoids: <code>PE(p + k)</code> is a linear function of "
            "<code>PE(p)</code>. The steps build that function, <code>R(k)</code>, block-diagonal 2 × 2 "
            "rotations by <code>kω_i</code>: orthogonal, <code>R(0) = I</code>, <code>R(a)R(b) = R(a + "
            "b)</code>. A layer can therefore learn to attend “k positions back” with one matrix.",
            "논문이 사인파를 고른 이유는 <code>PE(p + k)</code>가 <code>PE(p)</code>의 선형 함수라는 데 있습니다. "
            "단계들은 그 함수 <code>R(k)</code>, 즉 <code>kω_i</code>만큼의 2 × 2 회전으로 이루어진 블록 대각 "
            "행렬을 만듭니다. 직교 행렬이고, <code>R(0) = I</code>, <code>R(a)R(b) = R(a + b)</code>입니다. "
            "그래서 층은 행렬 하나로 'k칸 앞'에 어텐션하는 법을 배울 수 있습니다."),
        "positional.relative": _t(
            "<code>sin a sin b + cos a cos b = cos(a − b)</code>, summed over the frequencies: the Gram matrix "
            "<code>G = PE PEᵀ</code> is constant along its diagonals, D/2 on the main one, and decays with "
            "ripples as <code>|p − q|</code> grows. The experiment measures the spread along each diagonal "
            "against float32 rounding.",
            "<code>sin a sin b + cos a cos b = cos(a − b)</code>를 주파수에 대해 더하면, 그람 행렬 "
            "<code>G = PE PEᵀ</code>는 대각선을 따라 일정하고 주대각선에서 D/2이며, <code>|p − q|</code>가 커질수록 "
            "물결치며 줄어듭니다. 실험은 각 대각선을 따른 값의 퍼짐을 float32 반올림 오차와 비교해 측정합니다."),
        "positional.rotary": _t(
            "RoPE rotates the pair <code>(x₂ᵢ, x₂ᵢ₊₁)</code> of a head vector by <code>pθᵢ</code>, with the "
            "frequencies of the sinusoidal encoding at width K. Rotations keep lengths, compose by adding "
            "angles (RoPE is the shift rotation of the sinusoidal encoding), and the backward pass is the "
            "inverse rotation.",
            "RoPE는 헤드 벡터의 쌍 <code>(x₂ᵢ, x₂ᵢ₊₁)</code>을 폭 K의 사인파 인코딩과 같은 주파수로 "
            "<code>pθᵢ</code>만큼 회전시킵니다. 회전은 길이를 보존하고, 각을 더하는 방식으로 합성되며(RoPE는 "
            "사인파 인코딩의 이동 회전과 같습니다), 역전파는 역회전입니다."),
        "positional.rotary_relative": _t(
            "The point of RoPE: rotate the query by its position's angles and the key by its own, and their "
            "dot product sees only the difference of the angles. The score depends on the offset "
            "<code>s − p</code>, never on where the pair sits in the sequence; the sampled check shifts both "
            "positions by large amounts and compares the scores.",
            "RoPE의 핵심입니다. 쿼리는 자기 위치의 각만큼, 키는 자기 위치의 각만큼 회전시키면, 둘의 내적에는 "
            "각의 차이만 남습니다. 점수는 위치 차이 <code>s − p</code>에만 의존하고, 그 쌍이 시퀀스의 어디에 "
            "있는지와는 무관합니다. 표본 검사는 두 위치를 크게 옮겨 가며 점수를 비교합니다."),
    },
    numbers=(
        _num("positional", "reversal.chance", ".1%", "chance accuracy, 1/S", "우연 수준의 정확도, 1/S"),
        _num("positional", "summary.none.token_accuracy.mean", ".1%",
             "reversal, held-out token accuracy: no positions", "뒤집기 과제, 보류 데이터 토큰 정확도: 위치 정보 없음"),
        _num("positional", "summary.sinusoidal.token_accuracy.mean", ".1%",
             "reversal: sinusoidal", "뒤집기 과제: 사인파"),
        _num("positional", "summary.learned.token_accuracy.mean", ".1%",
             "reversal: learned table", "뒤집기 과제: 학습된 테이블"),
        _num("positional", "summary.rotary.token_accuracy.mean", ".1%",
             "reversal: rotary (RoPE)", "뒤집기 과제: 회전(RoPE)"),
    ),
    exercises=(
        _ex("tfd derive positional.sinusoidal",
            _t("Show that every sinusoidal encoding has the same length, <code>√(D/2)</code>.",
               "모든 사인파 인코딩의 길이가 <code>√(D/2)</code>로 같음을 보이세요."),
            _t("The last step: one <code>sin² + cos² = 1</code> per frequency, D/2 frequencies.",
               "마지막 단계: 주파수마다 <code>sin² + cos² = 1</code>이 하나씩, 주파수는 D/2개입니다.")),
        _ex("tfd derive positional.shift_rotation",
            _t("Find the matrix <code>R(k)</code> with <code>PE(p + k) = R(k)PE(p)</code> and show that it "
               "does not depend on p.",
               "<code>PE(p + k) = R(k)PE(p)</code>를 만족하는 행렬 <code>R(k)</code>를 찾고, 그것이 p에 의존하지 "
               "않음을 보이세요."),
            _t("Step 1 for one frequency, step 2 at D = 4; then orthogonality and "
               "<code>R(a)R(b) = R(a + b)</code>.",
               "1단계는 주파수 하나, 2단계는 D = 4의 경우입니다. 이어서 직교성과 "
               "<code>R(a)R(b) = R(a + b)</code>를 보세요.")),
        _ex("tfd derive positional.rotary_relative",
            _t("Show that RoPE attention scores depend only on <code>s − p</code>.",
               "RoPE 어텐션 점수가 <code>s − p</code>에만 의존함을 보이세요."),
            _t("Step 1: <code>R(a)ᵀR(b) = R(b − a)</code> for one pair of columns; the other steps sum over "
               "the pairs.",
               "1단계: 열 한 쌍에 대해 <code>R(a)ᵀR(b) = R(b − a)</code>. 나머지 단계는 쌍들에 대해 더합니다.")),
        _ex("tfd verify --week 10",
            _t("Check every derivation of the week numerically against its jit-compiled implementation.",
               "이번 주의 모든 유도를 jit 컴파일된 구현과 수치로 비교해 확인하세요."),
            _t("Every row ok: steps n/n, numeric error within 1e-5, the sampled checks (the Gram matrix's "
               "diagonals, RoPE's lengths and offsets) passed.",
               "모든 행이 ok인지 보세요: 단계 n/n, 수치 오차 1e-5 이내, 표본 검사(그람 행렬의 대각선, RoPE의 "
               "길이와 위치 차이) 통과.")),
    ),
    limits=_t(
        "The reversal task uses sequences no longer than the training context, so the experiment does not "
        "test length generalisation (running beyond the trained positions), where these schemes differ "
        "most; a learned table has no row there at all. Other relative schemes, such as ALiBi, are not "
        "implemented.",
        "뒤집기 과제는 학습 문맥보다 길지 않은 시퀀스를 쓰므로, 이 방식들이 가장 크게 달라지는 길이 일반화"
        "(학습한 위치를 넘어서 실행하는 것)는 실험하지 않습니다. 학습된 테이블에는 그런 위치에 해당하는 행이 "
        "아예 없습니다. ALiBi 같은 다른 상대 위치 방식은 구현되어 있지 않습니다."),
)


# ---------------------------------------------------------------------------------------
# Week 11: residual connections, LayerNorm, the block
# ---------------------------------------------------------------------------------------

WEEK_11 = Week(
    number=11,
    title=_t("Residual connections, LayerNorm and the transformer block",
             "잔차 연결, 레이어 정규화, 그리고 트랜스포머 블록"),
    goal=_t(
        "Derive the Jacobian <code>I + ∂F/∂x</code> of a residual connection and see why it keeps gradients "
        "alive through depth; put LayerNorm and the two sublayers together into the pre-LN block and "
        "contrast it with post-LN.",
        "잔차 연결의 야코비안 <code>I + ∂F/∂x</code>를 유도하고, 그것이 깊은 층을 지나도 그래디언트를 살려 두는 "
        "이유를 이해합니다. 레이어 정규화(LayerNorm)와 두 하위 층(sublayer)을 묶어 pre-LN 블록을 만들고, "
        "post-LN과 비교합니다."),
    intro=(
        _t("A residual connection adds a sublayer's output to its input, <code>y = x + F(x)</code>. The "
           "sublayer only has to learn a correction; if it writes nothing, the layer is the identity. Its "
           "Jacobian is <code>I + ∂F/∂x</code>, so the gradient reaching x always contains the gradient at "
           "y unchanged. Through L layers the chain rule multiplies <code>(I + J_L)…(I + J_1)</code>, a sum "
           "over paths that always includes the identity path: the gradient has a route to the first layer "
           "that no layer can block.",
           "잔차 연결(residual connection)은 하위 층의 출력을 그 입력에 더합니다: <code>y = x + F(x)</code>. "
           "하위 층은 보정량만 배우면 되고, 아무것도 쓰지 않으면 층은 항등 함수가 됩니다. 야코비안은 "
           "<code>I + ∂F/∂x</code>이므로, x에 도달하는 그래디언트에는 y에서의 그래디언트가 항상 그대로 들어 "
           "있습니다. L개 층을 지나면 연쇄 법칙이 <code>(I + J_L)…(I + J_1)</code>을 곱하는데, 이는 경로들의 "
           "합이고 항상 항등 경로를 포함합니다. 즉 어떤 층도 막을 수 없는, 첫 층까지 이어지는 그래디언트의 "
           "길이 있습니다."),
        _t("LayerNorm rescales each position's vector to mean 0 and variance 1 over its D features, then "
           "applies a learned gain γ and bias β. It ignores a common offset and (up to ε) a common scale of "
           "its input, which keeps activations in a steady range as layers are stacked.",
           "레이어 정규화는 각 위치의 벡터를 D개 특징에 대해 평균 0, 분산 1로 맞춘 뒤, 학습되는 이득(gain) γ와 "
           "바이어스 β를 적용합니다. 입력의 공통 오프셋과 (ε을 제외하면) 공통 스케일을 무시하므로, 층을 쌓아도 "
           "활성값이 일정한 범위에 머물게 합니다."),
        _t("Where the LayerNorm sits matters. The original transformer and BERT are <em>post-LN</em>: "
           "normalise after each residual sum, <code>LN(x + F(x))</code>, so the residual stream itself is "
           "normalised in every layer. GPT-2 and this project's GPT are <em>pre-LN</em>: normalise only the "
           "input of each sublayer, <code>x + F(LN(x))</code>, leave the stream alone, and add one final "
           "LayerNorm before the output head. A pre-LN block whose sublayers write nothing is exactly the "
           "identity; a post-LN layer still normalises.",
           "레이어 정규화의 위치가 중요합니다. 원래의 트랜스포머와 BERT는 <em>post-LN</em>입니다. 각 잔차 합 "
           "뒤에 정규화하므로(<code>LN(x + F(x))</code>) 잔차 스트림 자체가 매 층마다 정규화됩니다. GPT-2와 이 "
           "프로젝트의 GPT는 <em>pre-LN</em>입니다. 각 하위 층의 입력만 정규화하고(<code>x + F(LN(x))</code>) "
           "스트림은 그대로 두며, 출력 헤드 앞에 마지막 레이어 정규화를 하나 더 둡니다. 하위 층이 아무것도 쓰지 "
           "않는 pre-LN 블록은 정확히 항등 함수이지만, post-LN 층은 여전히 정규화를 합니다."),
        _t("The <code>residual</code> experiment builds four stacks with the same parameters (pre-LN and "
           "post-LN, with and without the skips) at several depths, and measures the gradient norm of every "
           "layer at initialisation and after a short training. The key quantity is the ratio of the first "
           "layer's gradient to the last's in the deepest stack: near 1, every layer learns at the same rate; "
           "far below 1, the gradient vanishes on its way down; above 1, it grows. Compare the ratios at "
           "initialisation with those after training: does the gap between the stacks exist from the start, "
           "or open during training?",
           "<code>residual</code> 실험은 파라미터가 같은 네 가지 스택(pre-LN과 post-LN, 각각 잔차 연결이 있을 "
           "때와 없을 때)을 여러 깊이로 만들고, 초기화 시점과 짧은 학습 후에 모든 층의 그래디언트 노름을 "
           "측정합니다. 핵심은 가장 깊은 스택에서 첫 층과 마지막 층의 그래디언트 비율입니다. 1에 가까우면 모든 "
           "층이 같은 속도로 학습하고, 1보다 훨씬 작으면 그래디언트가 내려가는 도중에 사라지는 것이며, 1보다 "
           "크면 내려가며 커지는 것입니다. 초기화 시점의 비율과 학습 후의 비율을 비교해 보세요. 스택 사이의 "
           "차이는 처음부터 있을까요, 아니면 학습 중에 벌어질까요?"),
    ),
    derivation_notes={
        "residual.connection": _t(
            "Step 1 is the whole idea: for any differentiable F, the Jacobian of <code>x + F(x)</code> is "
            "<code>I + ∂F/∂x</code>. Step 2 writes <code>∂F/∂x</code> for the ReLU FFN. Step 3 expands three "
            "layers into the identity path, one term per layer, and the longer paths; the sampled check "
            "compares the Jacobian of a four-layer stack with that product.",
            "1단계가 핵심 아이디어 전부입니다. 미분 가능한 어떤 F에 대해서도 <code>x + F(x)</code>의 야코비안은 "
            "<code>I + ∂F/∂x</code>입니다. 2단계는 ReLU FFN의 <code>∂F/∂x</code>를 씁니다. 3단계는 세 층을 "
            "항등 경로, 층마다 하나씩의 항, 그리고 더 긴 경로들로 전개합니다. 표본 검사는 4층 스택의 야코비안을 "
            "이 곱과 비교합니다."),
        "normalization.layer_norm": _t(
            "The steps prove mean 0 and variance 1 before the affine map, invariance to adding a constant "
            "and (with ε = 0) to positive scaling, and the Jacobian "
            "<code>diag(γ)(I − 11ᵀ/D − x̂ᵀx̂/D)/σ</code>: it removes the mean direction and the direction of "
            "x̂ itself, so a gradient step never changes a row's mean, nor (to first order) its scale.",
            "단계들은 아핀 변환 전의 평균 0과 분산 1, 상수를 더하는 것과 (ε = 0일 때) 양수배에 대한 불변성, 그리고 "
            "야코비안 <code>diag(γ)(I − 11ᵀ/D − x̂ᵀx̂/D)/σ</code>를 증명합니다. 야코비안은 평균 방향과 x̂ 자신의 "
            "방향을 제거하므로, 그래디언트로 한 걸음 움직여도 행의 평균은 바뀌지 않고 스케일도 (1차 근사에서) "
            "바뀌지 않습니다."),
        "block.attention_sublayer": _t(
            "The first half of the pre-LN block, <code>h = x + MHA(LN₁(x), M)</code>. With "
            "<code>W_O = 0</code> and <code>b_O = 0</code> it is the identity (step 1): the residual stream "
            "carries x through. With the causal mask, position 0 sees only itself (step 2).",
            "pre-LN 블록의 앞쪽 절반, <code>h = x + MHA(LN₁(x), M)</code>입니다. <code>W_O = 0</code>, "
            "<code>b_O = 0</code>이면 항등 함수이고(1단계), 잔차 스트림이 x를 그대로 나릅니다. 인과 마스크가 "
            "있으면 위치 0은 자기 자신만 봅니다(2단계)."),
        "block.ffn_sublayer": _t(
            "The second half, <code>y = h + FFN(LN₂(h))</code>. With both sublayers silent the whole block is "
            "the identity (step 2), so a deep stack starts near the identity map and each block learns a "
            "correction. The sublayer is position-wise, and adding c to every input entry adds exactly c to "
            "the output, because LayerNorm removes the offset before the FFN.",
            "뒤쪽 절반, <code>y = h + FFN(LN₂(h))</code>입니다. 두 하위 층이 모두 아무것도 쓰지 않으면 블록 "
            "전체가 항등 함수가 되므로(2단계), 깊은 스택은 항등 사상 근처에서 출발하고 각 블록은 보정량을 "
            "배웁니다. 이 하위 층은 포지션별이며, 모든 입력 항목에 c를 더하면 출력에도 정확히 c가 더해집니다. "
            "레이어 정규화가 FFN 앞에서 오프셋을 제거하기 때문입니다."),
        "block.pre_ln": _t(
            "The whole block as one statement, evaluated node by node (LayerNorm, the heads, their "
            "concatenation, the FFN) and compared with the compiled <code>transformer_block</code> at small "
            "sizes. Its causality is checked with <code>jax.jacfwd</code> rather than symbolically.",
            "블록 전체를 하나의 명제로 두고, 노드별로(레이어 정규화, 헤드들, 그 연결, FFN) 계산해 작은 크기에서 "
            "컴파일된 <code>transformer_block</code>과 비교합니다. 인과성은 기호적으로가 아니라 "
            "<code>jax.jacfwd</code>로 검사합니다."),
    },
    numbers=(
        _num("residual", "claims.0.evidence.pre_ln", ".3g",
             "first/last layer gradient ratio after training, deepest stack: pre-LN with residuals",
             "학습 후 가장 깊은 스택의 첫 층/마지막 층 그래디언트 비율: pre-LN, 잔차 있음"),
        _num("residual", "claims.0.evidence.post_ln", ".3g",
             "the same: post-LN with residuals", "같은 비율: post-LN, 잔차 있음"),
        _num("residual", "claims.0.evidence.pre_ln_no_residual", ".3g",
             "the same: pre-LN without residuals", "같은 비율: pre-LN, 잔차 없음"),
        _num("residual", "claims.0.evidence.post_ln_no_residual", ".3g",
             "the same: post-LN without residuals", "같은 비율: post-LN, 잔차 없음"),
    ),
    exercises=(
        _ex("tfd derive residual.connection",
            _t("Show that the Jacobian of <code>y = x + F(x)</code> is <code>I + ∂F/∂x</code> for any "
               "differentiable F, and expand three stacked residual layers.",
               "미분 가능한 어떤 F에 대해서도 <code>y = x + F(x)</code>의 야코비안이 <code>I + ∂F/∂x</code>임을 "
               "보이고, 잔차 층 세 개를 쌓은 것을 전개하세요."),
            _t("Step 1, then step 3: <code>(I + J₃)(I + J₂)(I + J₁)</code> contains I, one term per layer, and "
               "the products of the longer paths.",
               "1단계, 그리고 3단계: <code>(I + J₃)(I + J₂)(I + J₁)</code>에는 I, 층마다 하나의 항, 그리고 더 긴 "
               "경로들의 곱이 들어 있습니다.")),
        _ex("tfd derive block.ffn_sublayer",
            _t("Show that a pre-LN block whose sublayers write nothing is the identity. Is the same true of a "
               "post-LN layer?",
               "하위 층이 아무것도 쓰지 않는 pre-LN 블록이 항등 함수임을 보이세요. post-LN 층도 그럴까요?"),
            _t("Step 2 of <code>block.ffn_sublayer</code>. Then compare step 1 of <code>bert.post_ln</code> "
               "(<code>tfd derive bert.post_ln</code>): <code>LN₂(LN₁(x))</code>, not x.",
               "<code>block.ffn_sublayer</code>의 2단계. 이어서 <code>bert.post_ln</code>의 1단계"
               "(<code>tfd derive bert.post_ln</code>)와 비교하세요: x가 아니라 <code>LN₂(LN₁(x))</code>입니다.")),
        _ex("tfd derive normalization.layer_norm",
            _t("Show that LayerNorm's output does not change when a constant is added to every input, and "
               "that its Jacobian sends the direction 1 to 0.",
               "모든 입력에 상수를 더해도 레이어 정규화의 출력이 바뀌지 않음을, 그리고 야코비안이 방향 1을 0으로 "
               "보냄을 보이세요."),
            _t("The offset step, and the Jacobian step: <code>(I − 11ᵀ/D − x̂ᵀx̂/D)1 = 0</code> because x̂ has "
               "mean 0.",
               "오프셋에 관한 단계와 야코비안 단계: x̂의 평균이 0이므로 <code>(I − 11ᵀ/D − x̂ᵀx̂/D)1 = 0</code>"
               "입니다.")),
        _ex("tfd verify --week 11",
            _t("Check the whole block, its two sublayers, LayerNorm and the residual connection against their "
               "jit-compiled implementations.",
               "블록 전체, 두 하위 층, 레이어 정규화, 잔차 연결을 jit 컴파일된 구현과 비교해 확인하세요."),
            _t("Every row ok, including the sampled checks: the block is causal, the FFN sublayer "
               "position-wise, and a stack's Jacobian the product of <code>(I + J_l)</code>.",
               "표본 검사까지 모든 행이 ok인지 보세요: 블록은 인과적이고, FFN 하위 층은 포지션별이며, 스택의 "
               "야코비안은 <code>(I + J_l)</code>의 곱입니다.")),
    ),
)


# ---------------------------------------------------------------------------------------
# Week 12: epilogue, GPT as a decoder and BERT as an encoder
# ---------------------------------------------------------------------------------------

WEEK_12 = Week(
    number=12,
    title=_t("Epilogue: GPT as a decoder, BERT as an encoder", "에필로그: 디코더 GPT와 인코더 BERT"),
    goal=_t(
        "Assemble the whole model from the verified parts (the GPT's embedding, its pre-LN blocks and its "
        "tied output head, with its exact parameter count and training FLOPs), then BERT from the same "
        "blocks, bidirectional and post-LN: the study group's next topic.",
        "검증된 부품들로 모델 전체를 조립합니다. GPT의 임베딩, pre-LN 블록들, 임베딩과 공유하는 출력 헤드, "
        "그리고 정확한 파라미터 수와 학습 FLOPs를 다룬 뒤, 같은 블록으로 양방향이고 post-LN인 BERT를 "
        "만듭니다. BERT는 스터디의 다음 주제입니다."),
    intro=(
        _t("A GPT is the weeks put together. Token ids select rows of <code>W_E</code> and the learned "
           "position rows <code>W_P</code> are added (<code>gpt.embedding</code>); L pre-LN blocks each apply "
           "an attention sublayer and an FFN sublayer to the residual stream "
           "(<a href=\"week-11.html\">week 11</a>); a final LayerNorm and the output head, whose weights are "
           "<code>W_Eᵀ</code> when tied, give the logits (<code>gpt.logits</code>); and the loss is the "
           "cross-entropy of <a href=\"week-01.html\">week 1</a>. The parameter count is a polynomial in the "
           "shapes that matches the released GPT-2 checkpoints, and the training cost per token follows "
           "from counting the matrix products.",
           "GPT는 지금까지의 주차를 합친 것입니다. 토큰 id가 <code>W_E</code>의 행을 고르고 학습된 위치 행 "
           "<code>W_P</code>가 더해집니다(<code>gpt.embedding</code>). L개의 pre-LN 블록이 각각 잔차 스트림에 "
           "어텐션 하위 층과 FFN 하위 층을 적용합니다(<a href=\"week-11.html\">11주차</a>). 마지막 레이어 "
           "정규화와 출력 헤드(공유할 때 가중치는 <code>W_Eᵀ</code>)가 로짓을 내고(<code>gpt.logits</code>), "
           "손실은 <a href=\"week-01.html\">1주차</a>의 교차 엔트로피입니다. 파라미터 수는 모양에 대한 "
           "다항식으로 공개된 GPT-2 체크포인트와 일치하고, 토큰당 학습 비용은 행렬 곱을 세어 얻습니다."),
        _t("BERT uses the same attention, FFN and LayerNorm, with three differences. Its attention is "
           "bidirectional: no causal mask, every position sees every real token, and padding is hidden by a "
           "mask over keys. Its layers are post-LN, as in the original transformer. And its input adds a "
           "token-type row and is normalised at once. It is pre-trained by masked language modelling, "
           "predicting hidden tokens from both sides, so it encodes rather than generates; sentence "
           "encoders such as all-MiniLM-L6-v2 are BERTs trained further to place paraphrases together.",
           "BERT는 같은 어텐션, FFN, 레이어 정규화를 쓰되 세 가지가 다릅니다. 어텐션이 양방향입니다. 인과 "
           "마스크가 없고 모든 위치가 모든 실제 토큰을 보며, 패딩은 키에 대한 마스크로 가립니다. 층은 원래 "
           "트랜스포머처럼 post-LN입니다. 그리고 입력에 토큰 타입 행을 더하고 곧바로 정규화합니다. BERT는 "
           "가려진 토큰을 양쪽 문맥으로 예측하는 마스크드 언어 모델링(masked language modelling)으로 "
           "사전학습되므로, 텍스트를 생성하기보다 인코딩합니다. all-MiniLM-L6-v2 같은 문장 인코더는 "
           "패러프레이즈를 가깝게 놓도록 추가로 학습된 BERT입니다."),
        _t("The <code>epilogue</code> experiment runs both on real inputs: MiniLM, loaded from its published "
           "weights, and the shared GPT. It draws their masks and attention maps and measures causality "
           "directly: replace a later token and see how far earlier outputs move, and take the Jacobian of "
           "the outputs with respect to the inputs. In the GPT every earlier output must stay exactly where "
           "it was; in BERT every real output moves. It also splits each model's parameters by part; look "
           "at how much of a small encoder with a large WordPiece vocabulary is its embedding table.",
           "<code>epilogue</code> 실험은 두 모델을 실제 입력에 실행합니다. 공개된 가중치를 불러온 MiniLM과 "
           "공유 GPT입니다. 두 모델의 마스크와 어텐션 맵을 그리고, 인과성을 직접 측정합니다. 뒤쪽 토큰을 바꿨을 "
           "때 앞쪽 출력이 얼마나 움직이는지 보고, 입력에 대한 출력의 야코비안을 구합니다. GPT에서는 앞쪽 출력이 "
           "모두 정확히 제자리에 있어야 하고, BERT에서는 모든 실제 출력이 움직입니다. 또한 각 모델의 파라미터를 "
           "부분별로 나눕니다. WordPiece 어휘가 큰 작은 인코더에서 임베딩 테이블이 얼마나 큰 비중을 차지하는지 "
           "보세요."),
        _t("Where to go next: the study group's next topic is BERT. <code>bert.embedding</code>, "
           "<code>bert.post_ln</code> and <code>bert.pooler</code>, with week 5's "
           "<code>bert.mean_pooling</code> and <code>bert.normalize</code>, are the verified parts of the "
           "encoder, and <code>model/bert.py</code> loads a local BERT checkpoint (<code>config.json</code> "
           "and <code>model.safetensors</code>) into them.",
           "다음 단계: 스터디의 다음 주제는 BERT입니다. <code>bert.embedding</code>, <code>bert.post_ln</code>, "
           "<code>bert.pooler</code>와 5주차의 <code>bert.mean_pooling</code>, <code>bert.normalize</code>가 "
           "인코더의 검증된 부품이며, <code>model/bert.py</code>는 로컬 BERT 체크포인트(<code>config.json</code>과 "
           "<code>model.safetensors</code>)를 이 부품들로 불러옵니다."),
    ),
    derivation_notes={
        "gpt.embedding": _t(
            "Token ids pick rows of <code>W_E</code> (a product with a one-hot matrix) and the position rows "
            "are added. The same token at two positions differs only by their position vectors (step 2). "
            "In the backward pass a token that occurs twice collects both gradients (step 3): only the rows "
            "of tokens that occur are updated.",
            "토큰 id가 <code>W_E</code>의 행을 고르고(원-핫 행렬과의 곱) 위치 행이 더해집니다. 두 위치에 있는 "
            "같은 토큰은 위치 벡터만큼만 다릅니다(2단계). 역전파에서 두 번 나온 토큰은 두 그래디언트를 모두 "
            "받습니다(3단계). 나온 토큰의 행만 갱신됩니다."),
        "gpt.logits": _t(
            "After the last block the stream is normalised once more and multiplied by <code>W_U</code>. Tied "
            "to the embedding (<code>W_U = W_Eᵀ</code>), the logit of token v is the dot product of the final "
            "state with v's embedding row (step 1): the similarity of week 5 once more. The final "
            "LayerNorm's gain and bias can be folded into the head (step 2).",
            "마지막 블록 뒤에서 스트림을 한 번 더 정규화하고 <code>W_U</code>를 곱합니다. 임베딩과 공유하면"
            "(<code>W_U = W_Eᵀ</code>) 토큰 v의 로짓은 최종 상태와 v의 임베딩 행의 내적입니다(1단계). 5주차의 "
            "유사도가 다시 등장합니다. 마지막 레이어 정규화의 이득과 바이어스는 헤드에 흡수할 수 있습니다(2단계)."),
        "gpt.param_count": _t(
            "Sum the verified parts: a block has attention's <code>4D² + 4D</code>, the FFN's "
            "<code>2DF + F + D</code> and two LayerNorms' <code>4D</code>, so <code>12D² + 13D</code> with "
            "<code>F = 4D</code>. Add <code>VD</code>, <code>TD</code> for learned positions and the final "
            "LayerNorm; tying the head saves <code>VD</code>. At GPT-2's shapes the formula gives the "
            "released sizes, and without the embeddings the count approaches Kaplan et al.'s "
            "<code>12LD²</code>.",
            "검증된 부품을 더합니다. 블록 하나에는 어텐션의 <code>4D² + 4D</code>, FFN의 <code>2DF + F + D</code>, "
            "레이어 정규화 두 개의 <code>4D</code>가 있어 <code>F = 4D</code>이면 <code>12D² + 13D</code>입니다. "
            "여기에 <code>VD</code>, 학습되는 위치의 <code>TD</code>, 마지막 레이어 정규화를 더하고, 헤드를 "
            "공유하면 <code>VD</code>가 절약됩니다. GPT-2의 모양을 넣으면 공개된 크기가 나오고, 임베딩을 빼면 "
            "Kaplan 등의 <code>12LD²</code>에 가까워집니다."),
        "cost.train_flops": _t(
            "Each weight that enters a matrix product costs 2 FLOPs per token forward and 4 backward (the "
            "gradients of both factors), hence <code>6N</code>; the attention products <code>QKᵀ</code> and "
            "<code>PV</code> hold no weights and add <code>12LTD</code>. The steps also say exactly what "
            "<code>6N + 12LTD</code> over-counts: 6 FLOPs for every parameter that enters no product (biases, "
            "LayerNorm, <code>W_P</code>, an untied <code>W_E</code>). Neither counts elementwise work or the "
            "optimizer.",
            "행렬 곱에 들어가는 가중치 하나는 토큰당 순전파에서 2 FLOPs, 역전파에서 4 FLOPs(두 인자 각각의 "
            "그래디언트)가 들어 <code>6N</code>이 됩니다. 어텐션의 곱 <code>QKᵀ</code>와 <code>PV</code>에는 "
            "가중치가 없으며 <code>12LTD</code>를 더합니다. 단계들은 <code>6N + 12LTD</code>가 무엇을 더 세는지도 "
            "정확히 말합니다. 어떤 곱에도 들어가지 않는 파라미터(바이어스, 레이어 정규화, <code>W_P</code>, "
            "공유하지 않는 <code>W_E</code>)마다 6 FLOPs입니다. 둘 다 원소별 연산과 옵티마이저는 세지 않습니다."),
        "bert.embedding": _t(
            "Three lookups added, then a LayerNorm at once (a GPT normalises only inside its blocks). For a "
            "single sentence every token type is 0 and the type row folds into the position table (step 2); "
            "adding the same constant to a whole table changes nothing after the LayerNorm (step 3).",
            "세 번의 조회를 더한 뒤 곧바로 레이어 정규화를 합니다(GPT는 블록 안에서만 정규화합니다). 문장이 "
            "하나면 모든 토큰 타입이 0이어서 타입 행이 위치 테이블에 흡수되고(2단계), 테이블 전체에 같은 상수를 "
            "더해도 레이어 정규화 뒤에는 아무것도 바뀌지 않습니다(3단계)."),
        "bert.post_ln": _t(
            "The original transformer's layer: normalise after each residual sum. With both sublayers silent "
            "it is <code>LN₂(LN₁(x))</code>, not the identity (step 1); its output rows are normalised "
            "whatever the FFN adds (step 3); and a padded key is invisible (step 4). Compare "
            "<code>block.ffn_sublayer</code> of week 11, whose silent block is the identity.",
            "원래 트랜스포머의 층입니다. 각 잔차 합 뒤에 정규화합니다. 두 하위 층이 아무것도 쓰지 않아도 항등 "
            "함수가 아니라 <code>LN₂(LN₁(x))</code>이고(1단계), FFN이 무엇을 더하든 출력 행은 정규화되어 "
            "있으며(3단계), 패딩된 키는 보이지 않습니다(4단계). 하위 층이 조용하면 항등 함수가 되는 11주차의 "
            "<code>block.ffn_sublayer</code>와 비교해 보세요."),
        "bert.pooler": _t(
            "BERT's pre-training reads the whole input off the [CLS] position through a tanh layer (its "
            "next-sentence head, and classifiers fine-tuned on it). Only position 0 enters (step 1) and every "
            "entry lies in (−1, 1) (step 2). Sentence encoders such as MiniLM average the positions instead "
            "(<code>bert.mean_pooling</code>, week 5).",
            "BERT의 사전학습은 입력 전체를 [CLS] 위치에서 tanh 층을 통해 읽습니다(다음 문장 예측 헤드, 그리고 그 "
            "위에서 파인튜닝하는 분류기). 위치 0만 들어가고(1단계), 모든 항목은 (−1, 1) 안에 있습니다(2단계). "
            "MiniLM 같은 문장 인코더는 대신 위치들을 평균합니다(<code>bert.mean_pooling</code>, 5주차)."),
    },
    numbers=(
        _num("epilogue", "gpt.causality.max_change_earlier", ".3g",
             "GPT: largest change of an earlier output when a later token is replaced",
             "GPT: 뒤의 토큰을 바꿨을 때 앞 위치 출력의 최대 변화"),
        _num("epilogue", "bert.causality.min_change_earlier", ".3g",
             "BERT: smallest change of an earlier output when a later token is replaced",
             "BERT: 뒤의 토큰을 바꿨을 때 앞 위치 출력의 최소 변화"),
        _num("epilogue", "bert.padding_change", ".3g",
             "BERT: change of the real outputs when only the padding changes",
             "BERT: 패딩만 바꿨을 때 실제 출력의 변화"),
        _num("epilogue", "bert.parameters.total", ",",
             "BERT (MiniLM-L6): parameters", "BERT (MiniLM-L6): 파라미터 수"),
        _num("epilogue", "gpt.parameters.total", ",",
             "shared GPT: parameters (equal to gpt.param_count)", "공유 GPT: 파라미터 수 (gpt.param_count와 같음)"),
    ),
    exercises=(
        _ex("tfd derive gpt.param_count",
            _t("Count GPT-2 small's parameters from its shapes: <code>V = 50257</code>, <code>T = 1024</code>, "
               "<code>D = 768</code>, <code>L = 12</code>, <code>F = 4D</code>, biases, learned positions, "
               "tied head.",
               "모양으로부터 GPT-2 small의 파라미터 수를 세어 보세요: <code>V = 50257</code>, "
               "<code>T = 1024</code>, <code>D = 768</code>, <code>L = 12</code>, <code>F = 4D</code>, 바이어스 "
               "있음, 학습되는 위치, 공유 헤드."),
            _t("The step at GPT-2's shapes: 124,439,808, the size of the released checkpoint.",
               "GPT-2의 모양을 넣은 단계: 124,439,808, 공개된 체크포인트의 크기입니다.")),
        _ex("tfd derive cost.train_flops",
            _t("Where does <code>C ≈ 6N + 12LTD</code> come from, and what does it over-count?",
               "<code>C ≈ 6N + 12LTD</code>는 어디서 나오고, 무엇을 더 세나요?"),
            _t("The backward steps (each product costs twice its forward), the step with "
               "<code>6·N_matmul + 12LTD</code>, and the step listing the parameters that enter no product.",
               "역전파에 관한 단계들(각 곱의 역전파는 순전파의 두 배), <code>6·N_matmul + 12LTD</code> 단계, "
               "그리고 어떤 곱에도 들어가지 않는 파라미터를 나열하는 단계를 보세요.")),
        _ex("tfd derive bert.post_ln",
            _t("Show that in a post-LN layer silent sublayers still change the input, while in a pre-LN block "
               "they do not.",
               "post-LN 층에서는 하위 층이 조용해도 입력이 바뀌지만 pre-LN 블록에서는 그렇지 않음을 보이세요."),
            _t("Step 1: <code>LN₂(LN₁(x))</code>; compare step 2 of <code>block.ffn_sublayer</code>.",
               "1단계: <code>LN₂(LN₁(x))</code>. <code>block.ffn_sublayer</code>의 2단계와 비교하세요.")),
        _ex("tfd derive gpt.logits",
            _t("Show that with a tied head, the logit of token v at position t is the dot product of the final "
               "state at t with v's embedding.",
               "공유 헤드에서 위치 t의 토큰 v 로짓이 t의 최종 상태와 v 임베딩의 내적임을 보이세요."),
            _t("Step 1: <code>z_tv = Σ_j u_tj W_E[v, j]</code> with <code>u = LN_f(h)</code>.",
               "1단계: <code>u = LN_f(h)</code>일 때 <code>z_tv = Σ_j u_tj W_E[v, j]</code>.")),
    ),
    limits=_t(
        "The project loads a pretrained BERT (MiniLM) but does not pre-train one: there is no "
        "masked-language-modelling head or training loop, no next-sentence objective, and no fine-tuning "
        "on a downstream task. Its GPTs are small and character-level; the presets of GPT-2's sizes can be "
        "built and counted (<code>tfd info</code>), but the project has no loader for GPT-2's released "
        "weights.",
        "이 프로젝트는 사전학습된 BERT(MiniLM)를 불러오지만 직접 사전학습하지는 않습니다. 마스크드 언어 "
        "모델링 헤드나 그 학습 루프, 다음 문장 예측 목표, 다운스트림 과제에 대한 파인튜닝이 없습니다. 이 "
        "프로젝트의 GPT는 작은 문자 단위 모델이며, GPT-2 크기의 프리셋은 만들고 파라미터를 셀 수는 "
        "있지만(<code>tfd info</code>) GPT-2가 공개한 가중치를 불러오는 기능은 없습니다."),
)


#: The study weeks' pages, by week number (1 to 12).
WEEKS: dict[int, Week] = {w.number: w for w in (
    WEEK_1, WEEK_2, WEEK_3, WEEK_4, WEEK_5, WEEK_6, WEEK_7, WEEK_8, WEEK_9, WEEK_10, WEEK_11, WEEK_12)}
