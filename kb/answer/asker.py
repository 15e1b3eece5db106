"""Answering a question from the knowledge base: retrieve, pack the best passages into the LLM's context,
stream an answer whose [n] citations point at those passages, or abstain when the documents do not say.

No printing: text reaches the caller through `on_text` as it is generated, the outcome is an `Answer`.
The LLM is only loaded when it is needed (not for an abstention on weak evidence, not for --extractive).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from kb.answer.citations import Attribution, CitationFilter, cite, infer_citations
from kb.answer.evidence import evidence, weak_evidence
from kb.answer.extractive import extractive_answer, quoted_answer
from kb.answer.fusion import confident, generate_variants, translate
from kb.answer.grounding import (LoopGuard, drop_repeated_lines, is_decline, may_decline, unmentioned_names,
                                 unsupported)
from kb.answer.pivot import pivot_language, translate_answer
from kb.answer.prompt import ECHO_STOPS, check_messages, embedding_scorer, in_prompt_order, messages_for, pack
from kb.answer.sources import build_sources
from kb.answer.types import ABSTAIN, Answer, AskOptions, Citation, Source
from kb.text import LANGUAGE_NAME, other_language, question_language, text_language


class Asker:
    """Answers questions over one knowledge base; holds the searcher and loads the LLM on first need, so the
    shell pays for loading once."""

    def __init__(self, searcher, llm_factory: Callable[[], object] | None, embedder=None):
        """`embedder`: scores a long source's sentences when there is no searcher (the calibration bench feeds
        passages to `answer_from` directly); otherwise the searcher's, once retrieval has loaded it."""
        self.searcher = searcher
        self._llm_factory = llm_factory
        self._llm = None
        self._embedder = embedder

    # ---- what callers need to know or do, without reaching into the searcher ----------------------

    def close(self) -> None:
        self.searcher.close()

    @property
    def llm(self):
        """The LLM, loaded on first use."""
        if self._llm is None:
            if self._llm_factory is None:
                raise RuntimeError("no LLM configured")
            self._llm = self._llm_factory()
        return self._llm

    @property
    def loaded_llm(self):
        """The LLM if it is loaded, else None (reading this loads nothing)."""
        return self._llm

    def load_embedder(self) -> None:
        """Load the embedding model now (it otherwise loads with the first search)."""
        self.searcher.embedder  # noqa: B018

    @property
    def embedder_loaded(self) -> bool:
        return self.searcher.embedder_loaded

    @property
    def embedding_model(self) -> str | None:
        """The id of the embedding model the knowledge base was built with."""
        return self.searcher.meta.get("embedding_model")

    @property
    def has_reranker(self) -> bool:
        return self.searcher.reranker is not None

    @property
    def knowledge_base(self):
        return self.searcher.kb

    @property
    def kb_path(self):
        return self.searcher.kb.path

    @property
    def generation(self) -> int:
        """The index generation this asker searches (fixed when it was opened)."""
        return self.searcher.generation

    def search(self, query: str, k: int, path_glob: str | None = None, rerank: bool = True):
        """Hybrid retrieval alone, as `kb search` does it (a SearchResponse)."""
        return self.searcher.search(query, k=k, mode="hybrid", path_glob=path_glob, rerank=rerank)

    # ---- answering ------------------------------------------------------------------------------------

    def retrieve(self, question: str, options: AskOptions, on_status: Callable[[str], None] | None = None,
                 enough: Callable[[object], bool] | None = None) -> tuple[object, list[str], dict[str, float]]:
        """(search response, extra queries, timings). The question is searched once: its candidate lists (with
        its dense list over the other language's chunks, when part of the corpus is in the other language) are
        fused alone to judge confidence, and fused again with the extra queries' lists (or reranked) for the
        answer. The extra queries: the LLM's translation of the question, always when part of the corpus is in
        the other language; RAG-Fusion's rewordings when asked for, or in auto mode when the first retrieval is
        not confident and the translation did not lead to a passage in the other language. Evidence is judged on
        the question's own lists: judged on the translation's, off-topic questions (QUESTIONS.md x01, x02) passed
        the gate, because a small model's "translation" may already hold an answer and same-language cosines run
        higher; the gate's cross-lingual calibration is still to do (issue 12). `enough(first)` is asked of the
        question's own first retrieval before a translation would be written (not with `fusion` on): true stops
        there, with no translation and no rewordings (`ask` passes `settles`)."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        # the cross-language dense list too only with `translate`: other-language sources weaken the grounding
        # check's word test, and off-topic questions got answered (docs/answering.md)
        own = self.searcher.candidates([question], mode="hybrid", path_glob=options.path_glob,
                                       cross=options.translate, multilingual=True)
        first = self.searcher.fuse(own, k=options.top_k, rerank=False)
        timings["retrieve"] = (time.perf_counter() - t) * 1000
        use_llm = not options.extractive and self._llm_factory is not None and bool(first.hits)
        other = self.searcher.cross_language(question)
        translated = None
        if use_llm and options.translate and other and options.fusion != "on" and enough is not None:
            t = time.perf_counter()
            stop = enough(first)
            timings["settle"] = (time.perf_counter() - t) * 1000
            if stop:
                return first, [], timings
        if use_llm and options.translate and other:
            if on_status:
                on_status("translating the question")
            t = time.perf_counter()
            translated = translate(self.llm, question)
            timings["translate"] = (time.perf_counter() - t) * 1000
        fuse = use_llm and (options.fusion == "on" or (options.fusion == "auto" and not confident(first.hits)))
        # the translation's lists in place of the question's dense list over the other language: with both, the
        # other language outvoted the question's own lists, and q15's English overview page, which does not hold
        # E-214, displaced its Chinese answer (bench/translation_fusion.py)
        own_lists, translation_lists, reserve = own, None, [translated] if translated else []
        if translated:
            t = time.perf_counter()
            own_lists = own.without_cross()
            translation_lists = self.searcher.candidates([translated], mode="hybrid", path_glob=options.path_glob,
                                                         cross=False)
            if fuse and options.fusion == "auto":
                # the translation led to a passage in the other language: rewordings in the question's language
                # would outvote it (sample_docs, cross-lingual: first source right 20 -> 30 of 39 without them)
                top = self.searcher.fuse(own_lists + translation_lists, k=1, rerank=False).hits
                fuse = not (top and top[0].chunk_id in self.searcher.languages.get(other, ()))
            timings["retrieve"] += (time.perf_counter() - t) * 1000
        variants = [translated] if translated else []
        found = own_lists
        if fuse:
            if on_status:
                on_status("writing query variants")
            variants, timings["fusion"] = generate_variants(self.llm, question, options.variants, translated=translated)
            rewordings = [v for v in variants if v != translated]
            if rewordings:
                t = time.perf_counter()
                found = found + self.searcher.candidates(rewordings, mode="hybrid", path_glob=options.path_glob,
                                                         cross=False)
                timings["retrieve"] += (time.perf_counter() - t) * 1000
        if translation_lists:  # last, as before: RRF breaks ties by the order of the lists
            found = found + translation_lists
        response = first
        if variants or (options.rerank and self.searcher.reranker is not None):
            t = time.perf_counter()
            # the translation's best passage kept among the sources: RAG-Fusion's rewordings are in the question's
            # language, and with the question's own lists they outvoted the translation's (stop 18)
            response = self.searcher.fuse(found, k=options.top_k, rerank=options.rerank, reserve=reserve)
            timings["retrieve"] += (time.perf_counter() - t) * 1000 - response.timings_ms.get("rerank", 0.0)
            if "rerank" in response.timings_ms:
                timings["rerank"] = response.timings_ms["rerank"]
        return response, variants, timings

    def ask(self, question: str, options: AskOptions, on_text: Callable[[str], None] | None = None,
            on_status: Callable[[str], None] | None = None,
            on_sources: Callable[[list[Source]], None] | None = None) -> Answer:
        """Retrieve, then answer from the sources. `on_sources(sources)` is told the numbered sources as soon as
        the prompt is packed, before the LLM starts (so a terminal can show them while the answer is written)."""
        started = time.perf_counter()
        lang = question_language(question)
        answer = Answer(question=question, language=lang)
        response, answer.queries, answer.timings_ms = self.retrieve(
            question, options, on_status, enough=lambda first: self.settles(question, lang, first, options))
        sources = build_sources(response.hits)
        if not sources:
            return self._abstain(answer, [], "no passages", on_text, started)
        if weak_evidence(evidence(response.list_scores), self.embedding_model):
            return self._abstain(answer, sources, "weak evidence", on_text, started)
        if options.extractive:
            for n, s in enumerate(sources, 1):
                s.n = n
            answer.sources = sources
            answer.answer, numbers = extractive_answer(question, sources)
            answer.citations = [Citation(sources[n - 1]) for n in numbers]
            if on_text:
                on_text(answer.answer)
            answer.timings_ms["total"] = (time.perf_counter() - started) * 1000
            return answer

        return self.answer_from(question, sources, options, on_text, on_sources, answer, started, on_status)

    def answer_from(self, question: str, sources: list[Source], options: AskOptions,
                    on_text: Callable[[str], None] | None = None,
                    on_sources: Callable[[list[Source]], None] | None = None,
                    answer: Answer | None = None, started: float | None = None,
                    on_status: Callable[[str], None] | None = None) -> Answer:
        """The LLM's answer to `question` from these sources (best first), checked and cited: what `ask` does
        after retrieval, and what the calibration bench feeds gold and distractor passages to. When the best source
        is in the other language (`kb.answer.pivot`), the model answers the question's translation in theirs,
        and the checked answer reaches `on_text` once translated, in one piece."""
        started = time.perf_counter() if started is None else started
        lang = question_language(question)
        answer = answer or Answer(question=question, language=lang)
        missing = unmentioned_names(question, sources)
        if missing:  # before the LLM is loaded: it would answer with another subject's fact (docs/answering.md)
            return self._abstain(answer, sources, f"no source mentions {', '.join(missing)}", on_text, started)
        llm = self.llm
        answer.model = llm.model_id
        answer.sources = self._pack(question, sources, lang, options)
        if on_sources:
            on_sources(answer.sources)
        asked, asked_lang = question, lang  # what the model answers, in which language
        pivot = pivot_language(lang, answer.sources) if options.pivot else None
        if pivot:
            t = time.perf_counter()
            asked = next((q for q in answer.queries if question_language(q) == pivot), None) \
                or translate(llm, question) or question
            answer.timings_ms["translate"] = answer.timings_ms.get("translate", 0.0) + (time.perf_counter() - t) * 1e3
            if asked == question:  # no usable translation: answered directly, as without the pivot
                pivot = None
            else:
                asked_lang = pivot
                if on_status:
                    on_status(f"answering from the {LANGUAGE_NAME[pivot].split()[0]} sources, then translating")
        t = time.perf_counter()
        read, answer.answerable, why_refused = self._check(llm, asked, answer.sources, asked_lang, options)
        checked = (time.perf_counter() - t) * 1000
        if why_refused:
            answer.timings_ms["check"] = checked
            return self._refuse(answer, why_refused, on_text, started)
        # a decline after reading both languages: the sources in the other language are read again, alone
        theirs = self._theirs(lang, answer, options) if not pivot else None
        written = None
        while written is None:
            if answer.answerable is not None:
                answer.timings_ms["check"] = checked
                if answer.answerable < options.answer_check:
                    return self._refuse(answer, f"the model judged that no source states the answer "
                                                f"(P(yes) {answer.answerable:.2f} < {options.answer_check:g})",
                                        on_text, started)
            whole = len(read) == len(answer.sources)
            # judged sure that they state the answer: a decline is held back, and the sources are quoted instead
            quote = whole and not pivot and options.sure(answer.answerable)
            written = self._write(llm, asked, read, asked_lang, options, None if pivot else on_text,
                                  hold_decline=not whole or quote or bool(theirs))
            if written is None and whole:
                break
            if written is None:  # it declined with the best source alone, which it had judged to state the answer
                t, read = time.perf_counter(), answer.sources
                answer.answerable = llm.yes_probability(check_messages(asked, read, asked_lang)) \
                    if options.answer_check > 0 else None
                checked += (time.perf_counter() - t) * 1000
        answer.first_source_only = len(read) < len(answer.sources)
        answer.sources, unread = read, answer.sources[len(read):]
        if written is None and quote:
            return self._quote(answer, on_text, started)
        if written is None and theirs:
            t = time.perf_counter()
            asked, read = theirs
            asked_lang = pivot = other_language(lang)
            p = llm.yes_probability(check_messages(asked, read, asked_lang)) if options.answer_check > 0 else None
            if p is None or p >= options.answer_check:
                written = self._write(llm, asked, read, asked_lang, options, None, hold_decline=True)
            answer.timings_ms["reread"] = (time.perf_counter() - t) * 1000
            if written is not None:
                answer.answerable = p
                again = {tuple(r.chunk_ids) for r in read}
                answer.sources, unread = read, [s for s in answer.sources if tuple(s.chunk_ids) not in again]
        if written is None:
            return self._refuse(answer, "the model found no answer", on_text, started)
        text, flt = written
        answer.answer = text
        stats = dict(getattr(llm, "last_stats", {}) or {})
        answer.timings_ms.update({k: float(stats[k]) for k in ("prompt_tokens", "prompt_tokens_evaluated", "first_token_ms")
                                  if k in stats})
        if "first_token_ms" in answer.timings_ms:
            answer.timings_ms["first_token"] = answer.timings_ms.pop("first_token_ms")
        answer.tokens_per_s = stats.get("tokens_per_s")
        declined = is_decline(answer.answer)
        # a pivot the model was sure of: its translation's words are not the user's (docs/answering.md)
        why_not = None if declined else unsupported(answer.answer, answer.sources, asked, unread,
                                                    translated=bool(pivot) and options.sure(answer.answerable))
        if declined and not flt.cited:
            answer.abstained, answer.abstain_reason = True, "the model found no answer"
            answer.answer = ABSTAIN[lang] if pivot else answer.answer
        elif why_not:
            answer.unsupported_answer, answer.answer = answer.answer, ABSTAIN[lang]
            answer.abstained, answer.abstain_reason = True, f"not supported by the sources: {why_not}"
        else:
            text, answer.citations = cite(text, answer.sources, self._inferred(text, answer.sources))
            answer.answer = text
            if pivot:
                t = time.perf_counter()
                answer.pivot = {"language": pivot, "question": asked, "answer": text}
                answer.answer = translate_answer(llm, text, lang, options.max_tokens) or text
                answer.timings_ms["translate_answer"] = (time.perf_counter() - t) * 1000
        if pivot and on_text:  # nothing was streamed: the answer in the sources' language was not for the user
            on_text(answer.answer)
        answer.timings_ms["total"] = (time.perf_counter() - started) * 1000
        return answer

    def settles(self, question: str, lang: str, first, options: AskOptions) -> bool:
        """Whether the question's own first retrieval (`first`, a search response) decides the answer, so that no
        translation need be written: its evidence is weak (the gate judges the question's own lists alone, so it
        refuses either way), or its best source is in the question's language and the model is as sure that it
        states the answer as the first-source check asks (`_check` then answers from it alone; its prompt is
        this one, so the KV cache serves both). Over sample_docs' 78 cases that held for 27 of the 39
        same-language questions, each with the expected place as that source, and for none of the 39
        cross-lingual ones (docs/answering.md)."""
        if weak_evidence(evidence(first.list_scores), self.embedding_model):
            return True
        if options.first_source_check <= 0:
            return False
        sources = build_sources(first.hits)
        if unmentioned_names(question, sources):  # the translation's passages may name it
            return False
        packed = self._pack(question, sources, lang, options)
        if pivot_language(lang, packed):
            return False
        # kept: when the translation's sources start with the same one, `_check` asks this very prompt again
        return options.sure(self.llm.yes_probability(check_messages(question, packed[:1], lang), keep=True))

    @staticmethod
    def _theirs(lang: str, answer: Answer, options: AskOptions) -> tuple[str, list[Source]] | None:
        """(the question's translation, the sources in its language, numbered from 1) to read again when the model
        declines over sources in both languages; None when there is nothing to read again. Given a mix, it
        declined questions whose answer was in a source in the other language (sample_docs: q12 asked in English
        over the Chinese service manual, whose first source was an English slide); the same sources, asked the
        translation alone, it answered (docs/answering.md). Part of `pivot`: the answer is translated back."""
        if not options.pivot:
            return None
        other = other_language(lang)
        asked = next((q for q in answer.queries if question_language(q) == other), None)
        theirs = [s for s in answer.sources if text_language(s.text) == other]
        if not asked or not theirs or len(theirs) == len(answer.sources):
            return None
        return asked, in_prompt_order([dataclasses.replace(s) for s in sorted(theirs, key=lambda s: s.rank)])

    def _pack(self, question: str, sources: list[Source], lang: str, options: AskOptions) -> list[Source]:
        llm = self.llm
        return pack(question, sources, lang, llm.n_ctx, options.max_tokens, llm.count_tokens,
                    options.context_tokens, options.source_tokens, self._sentence_scorer())

    @staticmethod
    def _check(llm, question: str, sources: list[Source], lang: str, options: AskOptions
               ) -> tuple[list[Source], float | None, str | None]:
        """(the sources the model will answer from, its P(yes) that they state the answer (None when not asked),
        the reason to refuse without answering, or None). Asked before the answer: a small model answers a question
        its sources do not answer with a neighbouring fact, yet judges "does any source state the answer?" better;
        the check's prompt is the answer's up to the question, so it costs the few tokens of its last line. First
        asked of the best source alone (its prompt is the start of the whole one, so the KV cache serves both):
        when the model is sure of it, the answer is written from it alone, and the first word comes after reading a
        third of the tokens. Otherwise, with `source_check`, the other sources are asked alone, one by one, until
        one gets `source_check`; when none does, kb refuses: asked of all sources at once, the model's P(yes) for
        another study's finding on the question's subject was as high as for the answer itself (docs/answering.md)."""
        alone = options.source_check > 0

        def none_alone(p: float) -> str | None:
            return (f"the model judged that no source alone states the answer (best P(yes) {p:.2f} < "
                    f"{options.source_check:g})") if alone and p < options.source_check else None

        if (options.first_source_check > 0 or alone) and len(sources) > 1:
            # kept: when the others are asked alone, the whole prompt still starts with this one
            p = llm.yes_probability(check_messages(question, sources[:1], lang), keep=alone)
            if options.sure(p):
                return sources[:1], p, None
            for s in sources[1:]:
                if not alone or p >= options.source_check:
                    break
                # numbered 1, as the first is: alone, each is the first and only source
                p = max(p, llm.yes_probability(check_messages(question, [dataclasses.replace(s, n=1)], lang)))
            why = none_alone(p)
            if why:
                return sources, p, why
        if options.answer_check <= 0 and not (alone and len(sources) == 1):
            return sources, None, None
        p = llm.yes_probability(check_messages(question, sources, lang))
        return sources, p, none_alone(p) if len(sources) == 1 else None

    @staticmethod
    def _write(llm, question: str, sources: list[Source], lang: str, options: AskOptions,
               on_text: Callable[[str], None] | None, hold_decline: bool) -> tuple[str, CitationFilter] | None:
        """(the answer the model streams from `sources`, its citation filter). `hold_decline`: its opening is held
        back while it may still be a decline, and a decline ends generation and returns None, unseen."""
        flt = CitationFilter({s.n for s in sources})
        parts: list[str] = []
        held = "" if hold_decline else None
        stream = llm.stream_chat(messages_for(question, sources, lang), max_tokens=options.max_tokens,
                                 temperature=options.temperature, stop=ECHO_STOPS)
        loop = LoopGuard()
        try:
            for piece in stream:
                text = flt.feed(piece)
                if held is not None and text:
                    held += text
                    if is_decline(held):
                        return None
                    if may_decline(held):
                        continue
                    text, held = held, None
                if text:
                    parts.append(text)
                    if on_text:
                        on_text(text)
                if loop.looping(piece):
                    break
        finally:
            close: Callable[[], None] | None = getattr(stream, "close", None)
            if close:
                close()
        tail = (held or "") + flt.flush()
        if held is not None and is_decline(tail):
            return None
        if tail:
            parts.append(tail)
            if on_text:
                on_text(tail)
        return drop_repeated_lines("".join(parts)).strip(), flt

    def _sentence_scorer(self):
        """The embedder retrieval already loaded scores a long source's sentences (it matches across languages;
        shared words, the fallback, cannot)."""
        embedder = self._embedder
        if embedder is None and self.searcher is not None and self.searcher.embedder_loaded:
            embedder = self.searcher.embedder
        return embedding_scorer(embedder) if embedder is not None else None

    def _inferred(self, text: str, sources: list[Source]) -> list[Attribution]:
        vectors = None
        embed = None
        try:
            import numpy as np

            dense = self.searcher.dense
            vectors = [dense.vectors(s.chunk_ids).mean(axis=0) for s in sources]
            vectors = [v / max(float(np.linalg.norm(v)), 1e-12) for v in vectors]
            embed = lambda sentence: self.searcher.embedder.embed_queries([sentence])[0]  # noqa: E731
        except Exception:  # no vectors at hand (e.g. a chunk missing from the index): words alone decide
            vectors = embed = None
        return infer_citations(text, sources, vectors, embed)

    @staticmethod
    def _quote(answer: Answer, on_text, started: float) -> Answer:
        """The sources' sentences closest to the question, quoted with their citations: the model judged them to
        state the answer (`AskOptions.sure`), then declined to write it (calibration en05: "… a group of similar
        pathologies termed ribosomopathies" was in its first source; sample_docs q21: form OL-F-112 in its slide's
        notes)."""
        answer.answer, numbers = quoted_answer(answer.question, answer.sources, answer.language)
        answer.quoted = True
        by_n = {s.n: s for s in answer.sources}
        answer.citations = [Citation(by_n[n]) for n in numbers]
        return Asker._said(answer, on_text, started)

    def _abstain(self, answer: Answer, nearest: list[Source], reason: str, on_text, started: float) -> Answer:
        """The refusal, with the nearest sources numbered as they would have been given to the model."""
        for n, s in enumerate(nearest, 1):
            s.n = n
        answer.sources = nearest
        return self._refuse(answer, reason, on_text, started)

    @staticmethod
    def _refuse(answer: Answer, reason: str, on_text, started: float) -> Answer:
        """The refusal, with the sources the answer already has."""
        answer.abstained, answer.abstain_reason = True, reason
        answer.answer = ABSTAIN[answer.language]
        return Asker._said(answer, on_text, started)

    @staticmethod
    def _said(answer: Answer, on_text, started: float) -> Answer:
        """`answer`, written whole without the LLM's stream: shown in one piece, its total time taken."""
        if on_text:
            on_text(answer.answer)
        answer.timings_ms["total"] = (time.perf_counter() - started) * 1000
        return answer


def open_asker(settings, cpu: bool = False, on_status: Callable[[str], None] | None = None) -> Asker:
    """An Asker over the configured knowledge base, with the configured LLM (loaded on first use)."""
    from kb.retrieve import open_searcher

    def llm_factory():
        from kb.llm import load_llm

        if on_status:
            on_status("loading the language model")
        return load_llm(settings, cpu=cpu, on_status=on_status)

    return Asker(open_searcher(settings), llm_factory)
