# Document, DocumentContent, Chunk and Embedding arrive with the ingestion work.
