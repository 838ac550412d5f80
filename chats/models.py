# Chat, Message, Citation and Vote arrive with the chat work.
