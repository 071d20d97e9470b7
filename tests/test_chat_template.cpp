// Chat templates whose Jinja is not available as a file here, checked against the strings the
// model cards and papers give (reference/deepseek-architecture.md 1.4, 2.2, 5.4).
#include <gtest/gtest.h>

#include "expect_error.h"
#include "test_data_dir.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/unicode.h"

namespace r1 {
namespace {

using testing::expect_error;

const Tokenizer& deepseek() { return testing::deepseek_v3_tokenizer(); }

std::string masked_text(const Tokenizer& t, const RenderedChat& r) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < r.ids.size(); ++i)
    if (r.assistant_mask[i]) ids.push_back(r.ids[i]);
  return t.decode(ids);
}

TEST(ChatTemplate, DeepSeekR1StripsEarlierReasoningAndPromptsThinking) {
  const std::vector<ChatMessage> history = {{"user", "1+1?"}, {"assistant", "<think>add</think>2"}, {"user", "2+2?"}};
  RenderedChat r = render_chat(deepseek(), ChatFormat::kDeepSeekR1, history, true);
  EXPECT_EQ(r.text, "<｜begin▁of▁sentence｜><｜User｜>1+1?<｜Assistant｜>2<｜end▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜><think>\n");
  EXPECT_EQ(r.ids, deepseek().encode(r.text));
  // Training on an R1 trace: the last answer keeps its reasoning.
  RenderedChat sft = render_chat(deepseek(), ChatFormat::kDeepSeekR1, {{"user", "Q"}, {"assistant", "<think>\nr\n</think>A"}}, false);
  EXPECT_EQ(sft.text, "<｜begin▁of▁sentence｜><｜User｜>Q<｜Assistant｜><think>\nr\n</think>A<｜end▁of▁sentence｜>");
  EXPECT_EQ(masked_text(deepseek(), sft), "<think>\nr\n</think>A<｜end▁of▁sentence｜>");
}

TEST(ChatTemplate, R1ZeroIsThePapersPlainTextTemplate) {
  RenderedChat r = render_chat(deepseek(), ChatFormat::kR1Zero, {{"user", "What is 3*4?"}}, true);
  EXPECT_EQ(r.text.rfind("A conversation between User and Assistant.", 0), 0u);
  EXPECT_NE(r.text.find("<think> reasoning process here </think> <answer> answer here </answer>. User: What is 3*4?. Assistant:"),
            std::string::npos);
  RenderedChat with_answer =
      render_chat(deepseek(), ChatFormat::kR1Zero, {{"user", "Q"}, {"assistant", "<think>x</think> <answer>12</answer>"}}, false);
  EXPECT_EQ(masked_text(deepseek(), with_answer), " <think>x</think> <answer>12</answer>");
  expect_error([] { render_chat(deepseek(), ChatFormat::kR1Zero, {{"user", "a"}, {"user", "b"}}, true); }, "one user question");
}

TEST(ChatTemplate, PlainIsTheTextsAsTheyAreWithEosAfterEachAnswer) {
  const Tokenizer& t = deepseek();
  RenderedChat r = render_chat(t, ChatFormat::kPlain,
                               {{"system", "Sums."}, {"user", "Q: 1+2=? A:"}, {"assistant", " 3"}, {"user", "Q: 2+2=? A:"}},
                               true);
  EXPECT_EQ(r.text, "Sums.\nQ: 1+2=? A: 3<｜end▁of▁sentence｜>Q: 2+2=? A:");
  EXPECT_EQ(masked_text(t, r), " 3<｜end▁of▁sentence｜>");
  EXPECT_EQ(chat_format_from_name("plain"), ChatFormat::kPlain);
}

TEST(ChatTemplate, DeepSeekCoderInstruct) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_to_unicode(static_cast<uint8_t>(b))] = b;
  nlohmann::json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
                      {"pre_tokenizer", {{"type", "ByteLevel"}, {"use_regex", true}}},
                      {"decoder", {{"type", "ByteLevel"}}},
                      {"added_tokens", {{{"id", 256}, {"content", "<|EOT|>"}, {"special", true}}}}};
  Tokenizer t = Tokenizer::from_json(j, "coder");
  RenderedChat r = render_chat(t, ChatFormat::kDeepSeekCoder, {{"user", "Sort a list"}, {"assistant", "sorted(x)"}}, false);
  EXPECT_NE(r.text.find("you will refuse to answer.\n### Instruction:\nSort a list\n### Response:\nsorted(x)\n<|EOT|>\n"),
            std::string::npos);
  EXPECT_EQ(masked_text(t, r), "sorted(x)\n<|EOT|>");
}

TEST(ChatTemplate, ChatMlDefaultSystemMessagesAreReadFromTheJinja) {
  // SmolLM2-135M-Instruct's template (a newline inside the literal) and Qwen2.5's (the \n escape).
  const std::string smollm2 =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
      "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
      "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}";
  EXPECT_EQ(chatml_default_system(smollm2), "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  const std::string qwen =
      "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\nYou are Qwen.\\nBe brief.<|im_end|>\\n' }}"
      "{%- endif %}";
  EXPECT_EQ(chatml_default_system(qwen), "You are Qwen.\nBe brief.");
  EXPECT_EQ(chatml_default_system("{{'<|im_start|>' + message['role']}}"), "");
  // A system text computed by the template is not a literal r1 can take.
  EXPECT_EQ(chatml_default_system("{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n' + x + "
                                  "'<|im_end|>' }}{% endif %}"), "");
}

TEST(ChatTemplate, RecognisesJinjaAndRejectsUnknownOnes) {
  EXPECT_EQ(chat_format_from_jinja(deepseek().chat_template()), ChatFormat::kDeepSeekV3);
  EXPECT_EQ(chat_format_from_jinja("{{ 'User: ' + m }}{{ 'Assistant: ' }}"), ChatFormat::kDeepSeekLlm);
  EXPECT_EQ(chat_format_from_jinja("{{'<｜User｜>'}}{{'<｜Assistant｜><think>\\n'}}"), ChatFormat::kDeepSeekR1);
  EXPECT_EQ(chat_format_from_jinja("<|im_start|>"), ChatFormat::kChatMl);
  expect_error([] { chat_format_from_jinja("[INST] {{ m }} [/INST]"); }, "--chat-template");
  expect_error([] { chat_format_from_name("llama2"); }, "known: deepseek-llm");
  expect_error([] { render_chat(deepseek(), ChatFormat::kDeepSeekV3, {{"tool", "x"}}, false); }, "message 0: role 'tool'");
  expect_error([] { render_chat(deepseek(), ChatFormat::kChatMl, {{"user", "x"}}, false); }, "<|im_start|>");
}

}  // namespace
}  // namespace r1
